"""Developer tools that are not part of the cpworker package (the image build)."""
