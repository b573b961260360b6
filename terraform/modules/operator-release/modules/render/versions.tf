terraform {
  # No providers: this module is a pure function from inputs to the chart's values and the
  # CustomActionWorker manifests, so it can be tested and rendered anywhere.
  required_version = ">= 1.7"
}
