output "action_type_ids" {
  description = "actionTypeId of each custom action type, as a CustomActionWorker expects it."
  value       = module.action_types.action_type_ids
}

output "operator_role_arn" {
  description = "The operator's IAM role."
  value       = module.operator_iam.role_arn
}

output "release" {
  description = "Helm release of the operator."
  value       = module.operator_release.release_name
}

output "workers" {
  description = "CustomActionWorkers created."
  value       = module.operator_release.workers
}

output "event_queue_url" {
  description = "The wake-up event queue, when enable_event_wakeup is set."
  value       = module.job_events.queue_url
}
