output "action_type_ids" {
  description = "spec.actionTypeId of each action type, keyed build/test/deploy (examples/workers/ use the same)."
  value       = module.action_types.action_type_ids
}

output "operator_role_arn" {
  description = "The operator's IAM role."
  value       = module.operator_iam.role_arn
}

output "event_queue_url" {
  description = "The wake-up event queue (null without enable_event_wakeup)."
  value       = module.job_events.queue_url
}

output "helm_values" {
  description = "Chart values from the AWS side (region, service account, events queue): terraform output -raw helm_values > terraform-values.yaml."
  value       = yamlencode(local.helm_values)
}
