variable "region" {
  description = "AWS region of the pipelines (and of the EKS cluster)."
  type        = string
}

variable "cluster_name" {
  description = "Name of the EKS cluster the operator runs in."
  type        = string
}

variable "identity" {
  description = "pod_identity (needs the eks-pod-identity-agent add-on) or irsa (needs oidc_provider_arn)."
  type        = string
  default     = "pod_identity"
}

variable "oidc_provider_arn" {
  description = "With identity = irsa: the cluster's IAM OIDC provider ARN."
  type        = string
  default     = null
}

variable "operator_image_tag" {
  description = "Operator image tag. Empty: the chart's appVersion."
  type        = string
  default     = ""
}

variable "provider_name" {
  description = "Provider name of your custom action type (appears in the pipeline editor)."
  type        = string
  default     = "AcmeGpuBuild"
}

variable "action_version" {
  description = "Version of the custom action type. A published version can never be edited or re-created: bump it to publish a new definition."
  type        = string
  default     = "1"
}

variable "pool" {
  description = "Value of the queryable Pool property this cluster serves."
  type        = string
  default     = "gpu-a100"
}

variable "worker_namespace" {
  description = "Namespace the build Jobs run in (must exist)."
  type        = string
  default     = "ci"
}

variable "builder_image" {
  description = "Image of the build container."
  type        = string
  default     = "public.ecr.aws/docker/library/busybox:1.36"
}

variable "create_workers" {
  description = "Create the CustomActionWorker. Leave false on the first apply (the CRD must exist before Terraform can plan it), then set true."
  type        = bool
  default     = false
}

variable "enable_event_wakeup" {
  description = "Create an SQS queue fed by an EventBridge rule for STARTED (and early-ended) executions of the action type, and let the operator read it (an opt-in wake-up hint; polling works without it)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for the AWS resources."
  type        = map(string)
  default     = {}
}
