output "queue_arn" {
  description = "ARN of the queue (give it to operator-iam's event_queue_arns)."
  value       = one(aws_sqs_queue.this[*].arn)
}

output "queue_url" {
  description = "URL of the queue."
  value       = one(aws_sqs_queue.this[*].id)
}

output "rule_arn" {
  description = "ARN of the EventBridge rule."
  value       = one(aws_cloudwatch_event_rule.this[*].arn)
}

output "event_pattern" {
  description = "The rule's event pattern (JSON)."
  value       = jsonencode(local.event_pattern)
}
