output "chart_values" {
  description = "Values for helm/cpworker (pass through yamlencode())."
  value       = local.chart_values
}

output "worker_manifests" {
  description = "CustomActionWorker manifests, keyed by name."
  value       = local.worker_manifests
}
