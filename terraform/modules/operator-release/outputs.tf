output "release_name" {
  description = "Name of the Helm release."
  value       = one(helm_release.this[*].name)
}

output "namespace" {
  description = "Namespace of the operator."
  value       = one(helm_release.this[*].namespace)
}

output "chart_values" {
  description = "The values the module passed to the chart (before extra_values)."
  value       = module.render.chart_values
}

output "workers" {
  description = "The CustomActionWorker objects created, keyed by name: namespace/name."
  value       = { for name, m in kubernetes_manifest.worker : name => "${m.manifest.metadata.namespace}/${m.manifest.metadata.name}" }
}
