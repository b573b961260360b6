output "role_arn" {
  description = "ARN of the operator's role."
  value       = one(aws_iam_role.this[*].arn)
}

output "role_name" {
  description = "Name of the operator's role."
  value       = one(aws_iam_role.this[*].name)
}

output "policy_json" {
  description = "The operator's CodePipeline permissions policy document (JSON)."
  value       = one(aws_iam_role_policy.this[*].policy)
}

output "assume_worker_roles_policy_json" {
  description = "The sts:AssumeRole policy document for the per-worker roles (JSON), when any are listed."
  value       = one(aws_iam_role_policy.assume_worker_roles[*].policy)
}

output "action_type_arns" {
  description = "The action type ARNs PollForJobs is allowed on."
  value       = var.create ? local.action_type_arns : []
}

output "read_event_queues_policy_json" {
  description = "The policy document for the wake-up events (JSON), when any queues are listed: SQS read on the queues, and GetPipeline on pipeline_names (read_pipelines)."
  value       = one(aws_iam_role_policy.read_event_queues[*].policy)
}

output "pod_identity_association_arn" {
  description = "ARN of the EKS Pod Identity association, when one was created."
  value       = one(aws_eks_pod_identity_association.this[*].association_arn)
}

output "service_account_annotations" {
  description = "Annotations for the operator's service account (the Helm chart's serviceAccount.annotations): the IRSA role annotation with identity = \"irsa\", none with Pod Identity."
  value       = var.create && var.identity == "irsa" ? { "eks.amazonaws.com/role-arn" = aws_iam_role.this[0].arn } : {}
}

output "namespace" {
  description = "Namespace the role is bound to (pass on to the release)."
  value       = var.namespace
}

output "service_account" {
  description = "Service account the role is bound to (pass on to the release)."
  value       = var.service_account
}
