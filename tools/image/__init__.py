"""Building the operator image with podman, hermetically: see docs/image.md."""
