variable "create" {
  description = "Whether to create anything."
  type        = bool
  default     = true
}

variable "name" {
  description = "Name of the operator's IAM role (and of its inline policy)."
  type        = string
  default     = "cpworker-operator"

  validation {
    condition     = can(regex("^[\\w+=,.@-]{1,64}$", var.name))
    error_message = "An IAM role name is 1-64 characters of [A-Za-z0-9_+=,.@-]."
  }
}

variable "path" {
  description = "IAM path of the role."
  type        = string
  default     = "/"
}

variable "permissions_boundary" {
  description = "ARN of a permissions boundary for the role, if your organisation requires one."
  type        = string
  default     = null
}

variable "max_session_duration" {
  description = "Maximum session duration of the role, in seconds (3600-43200)."
  type        = number
  default     = 3600

  validation {
    condition     = var.max_session_duration >= 3600 && var.max_session_duration <= 43200
    error_message = "max_session_duration is 3600-43200 seconds (IAM's range)."
  }
}

variable "action_types" {
  description = "The custom action types the operator works for: a list of {category, provider, version} (the values of the custom-action-type module's `action_type_ids` output fit as they are). PollForJobs is allowed on exactly these."
  type = list(object({
    category = string
    provider = string
    version  = string
    owner    = optional(string, "Custom")
  }))

  validation {
    condition     = length(var.action_types) > 0
    error_message = "List at least one action type: the operator may only poll for the types it serves."
  }

  validation {
    condition     = alltrue([for t in var.action_types : t.owner == "Custom"])
    error_message = "PollForJobs works only for action types owned by Custom."
  }
}

variable "partition" {
  description = "AWS partition of the action types' ARNs (aws, aws-cn, aws-us-gov). Defaults to the provider's partition."
  type        = string
  default     = null
}

variable "region" {
  description = "Region of the action types (for their ARNs). Defaults to the provider's region."
  type        = string
  default     = null
}

variable "account_id" {
  description = "Account of the action types (for their ARNs). Defaults to the caller's account."
  type        = string
  default     = null

  validation {
    condition     = var.account_id == null || can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id is 12 digits."
  }
}

variable "worker_role_arns" {
  description = "Per-worker roles the operator may assume (sts:AssumeRole) when a CustomActionWorker names one. Empty: no sts:AssumeRole statement."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.worker_role_arns : can(regex("^arn:[a-z-]+:iam::[0-9]{12}:role/.+$", arn))])
    error_message = "worker_role_arns must be IAM role ARNs."
  }
}

variable "event_queue_arns" {
  description = "SQS queues of wake-up events the operator may read (the job-events module's queue_arn). Empty: no SQS statement."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.event_queue_arns : can(regex("^arn:[a-z-]+:sqs:[a-z0-9-]+:[0-9]{12}:.+$", arn))])
    error_message = "event_queue_arns must be SQS queue ARNs."
  }
}

variable "read_pipelines" {
  description = "With event_queue_arns: allow codepipeline:GetPipeline on pipeline_names, so that an event wakes only the worker whose queryParam matches the started action's configuration. Without it, each event wakes every worker of its action type (one poll each)."
  type        = bool
  default     = true
}

variable "pipeline_names" {
  description = "Pipelines whose declarations the operator may read (GetPipeline), by name in the action types' account and region; IAM wildcards (*, ?) allowed. Default: every pipeline there, since any pipeline may use the action types; list them to scope tighter."
  type        = list(string)
  default     = ["*"]

  validation {
    condition     = length(var.pipeline_names) > 0 && alltrue([for name in var.pipeline_names : can(regex("^[A-Za-z0-9.@_*?-]{1,100}$", name))])
    error_message = "pipeline_names are pipeline names ([A-Za-z0-9.@_-], 1-100 characters) or patterns with * and ?."
  }
}

variable "identity" {
  description = "How the operator's pod gets the role: \"pod_identity\" (EKS Pod Identity, the default) or \"irsa\" (IAM roles for service accounts through the cluster's OIDC provider)."
  type        = string
  default     = "pod_identity"

  validation {
    condition     = contains(["pod_identity", "irsa"], var.identity)
    error_message = "identity must be \"pod_identity\" or \"irsa\"."
  }
}

variable "namespace" {
  description = "Kubernetes namespace the operator runs in."
  type        = string
  default     = "cpworker-system"
}

variable "service_account" {
  description = "Name of the operator's Kubernetes service account (the Helm chart's serviceAccount.name)."
  type        = string
  default     = "cpworker"
}

variable "cluster_name" {
  description = "EKS cluster name, for the Pod Identity association (identity = \"pod_identity\")."
  type        = string
  default     = null
}

variable "create_pod_identity_association" {
  description = "With identity = \"pod_identity\": create the aws_eks_pod_identity_association for namespace/service_account in cluster_name (needs the EKS Pod Identity Agent add-on on the cluster)."
  type        = bool
  default     = true
}

variable "oidc_provider_arn" {
  description = "With identity = \"irsa\": ARN of the cluster's IAM OIDC provider (arn:aws:iam::ACCOUNT:oidc-provider/oidc.eks.REGION.amazonaws.com/id/ID)."
  type        = string
  default     = null

  validation {
    condition     = var.oidc_provider_arn == null || can(regex("^arn:[a-z-]+:iam::[0-9]{12}:oidc-provider/.+$", var.oidc_provider_arn))
    error_message = "oidc_provider_arn must be an IAM OIDC provider ARN."
  }
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
