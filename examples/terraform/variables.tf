variable "region" {
  description = "AWS region of the pipelines and of the EKS cluster."
  type        = string
}

variable "cluster_name" {
  description = "Name of the EKS cluster the operator runs in (Pod Identity association; part of the role and queue names)."
  type        = string

  validation {
    condition     = can(regex("^[0-9A-Za-z][0-9A-Za-z_-]{0,39}$", var.cluster_name))
    error_message = "cluster_name is 1-40 characters of [0-9A-Za-z_-], starting with a letter or digit (it becomes part of IAM role and SQS queue names)."
  }
}

variable "identity" {
  description = "How the operator's pod gets its role: pod_identity (needs the eks-pod-identity-agent add-on) or irsa (needs oidc_provider_arn)."
  type        = string
  default     = "pod_identity"
}

variable "oidc_provider_arn" {
  description = "With identity = irsa: the cluster's IAM OIDC provider ARN."
  type        = string
  default     = null
}

variable "operator_namespace" {
  description = "Namespace of the Helm release (helm install -n)."
  type        = string
  default     = "cpworker-system"
}

variable "operator_service_account" {
  description = "The operator's ServiceAccount (the chart's serviceAccount.name; helm_values sets it)."
  type        = string
  default     = "cpworker"
}

variable "action_type_files" {
  description = "Which examples/codepipeline/action-type-<name>.json definitions to create."
  type        = list(string)
  default     = ["build", "test", "deploy"]
}

variable "enable_event_wakeup" {
  description = "Create the EventBridge rule and SQS queue that wake the operator when a job starts (dispatch in well under a second instead of up to the idle poll interval), and let the operator read it."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags for the AWS resources."
  type        = map(string)
  default     = {}
}
