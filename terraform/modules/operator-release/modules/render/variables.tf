variable "image" {
  description = "Operator image: repository, tag (empty: the chart's appVersion) and digest (sha256:..., empty: pull by tag)."
  type = object({
    repository  = optional(string, "ghcr.io/cpworker/cpworker")
    tag         = optional(string, "")
    digest      = optional(string, "")
    pull_policy = optional(string, "IfNotPresent")
  })
  default = {}

  validation {
    condition     = var.image.digest == "" || can(regex("^sha256:[0-9a-f]{64}$", var.image.digest))
    error_message = "image.digest is empty or sha256:<64 hex digits>."
  }

  validation {
    condition     = contains(["Always", "IfNotPresent", "Never"], var.image.pull_policy)
    error_message = "image.pull_policy is Always, IfNotPresent or Never."
  }
}

variable "replica_count" {
  description = "Operator replicas. More than one turns on kopf peering (one active replica, the others stand by)."
  type        = number
  default     = 1

  validation {
    condition     = var.replica_count >= 1 && floor(var.replica_count) == var.replica_count
    error_message = "replica_count is a whole number >= 1."
  }
}

variable "watch_namespaces" {
  description = "Namespaces whose CustomActionWorkers the operator serves. Empty: all namespaces."
  type        = list(string)
  default     = []
}

variable "worker_selector" {
  description = "Label selector of the CustomActionWorkers this release serves (CPWORKER_WORKER_SELECTOR): one shard of a fleet spread over several releases (docs/scaling.md). Empty: every worker in watch_namespaces."
  type        = string
  default     = ""

  validation {
    condition     = !can(regex("[\\x00-\\x1f]", var.worker_selector))
    error_message = "worker_selector is one line: a Kubernetes label selector such as shard=a."
  }
}

variable "peering_name" {
  description = "Name of the kopf peering object (with replica_count > 1). Shards of one fleet need names of their own: replicas sharing one elect a single active operator among all of them."
  type        = string
  default     = "cpworker"
}

variable "events_queue_url" {
  description = "SQS queue of CodePipeline's action execution events (the job-events module's queue_url): a job's STARTED event wakes the workers that can take it. Empty: polling only."
  type        = string
  default     = ""

  validation {
    condition     = var.events_queue_url == "" || can(regex("^https://", var.events_queue_url))
    error_message = "events_queue_url is an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME), or empty."
  }
}

variable "events_queue_region" {
  description = "Region of the events queue. Empty: the region in its URL."
  type        = string
  default     = ""
}

variable "aws_region" {
  description = "Default region of the CodePipeline API for workers without spec.region. Empty: AWS_REGION as injected by Pod Identity / IRSA."
  type        = string
  default     = ""
}

variable "log_format" {
  description = "Operator log format: json or text."
  type        = string
  default     = "json"

  validation {
    condition     = contains(["json", "text"], var.log_format)
    error_message = "log_format is json or text."
  }
}

variable "log_level" {
  description = "Operator log level."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], var.log_level)
    error_message = "log_level is DEBUG, INFO, WARNING, ERROR or CRITICAL."
  }
}

variable "extra_env" {
  description = "Extra plain environment variables for the operator container (CPWORKER_* settings, proxies...)."
  type        = map(string)
  default     = {}
}

variable "service_account_name" {
  description = "Name of the operator's service account: must be the one the IAM role trusts (operator-iam's service_account output)."
  type        = string
  default     = "cpworker"
}

variable "service_account_annotations" {
  description = "Annotations of the operator's service account (operator-iam's service_account_annotations output: the IRSA role annotation, or none with Pod Identity)."
  type        = map(string)
  default     = {}
}

variable "create_service_account" {
  description = "Whether the chart creates the service account."
  type        = bool
  default     = true
}

variable "crds" {
  description = "CRD handling: install with the chart (enabled) and keep on uninstall (keep)."
  type = object({
    enabled = optional(bool, true)
    keep    = optional(bool, true)
  })
  default = {}
}

variable "workers" {
  description = <<-EOT
    CustomActionWorker resources to create, keyed by metadata.name. `action_type_id` takes
    an entry of the custom-action-type module's `action_type_ids` output as it is.
    `job_template_yaml` is a batch/v1 JobTemplateSpec as YAML (yamlencode() or file()):
    a string, because Terraform cannot hold differently shaped objects in one map.
  EOT
  type = map(object({
    namespace = string
    action_type_id = object({
      category = string
      owner    = optional(string, "Custom")
      provider = string
      version  = string
    })
    query_param       = optional(map(string), {})
    max_in_flight     = optional(number)
    max_batch_size    = optional(number)
    region            = optional(string)
    role_arn          = optional(string)
    paused            = optional(bool)
    labels            = optional(map(string), {})
    job_template_yaml = string
  }))
  default = {}

  validation {
    condition     = alltrue([for w in values(var.workers) : length(w.query_param) <= 1])
    error_message = "A worker's query_param has at most one entry (PollForJobs accepts one)."
  }

  validation {
    condition = alltrue(flatten([
      for w in values(var.workers) : [
        for v in values(w.query_param) : can(regex("^[a-zA-Z0-9_-]{1,50}$", v))
      ]
    ]))
    error_message = "query_param values are 1-50 characters of [a-zA-Z0-9_-]."
  }

  validation {
    condition     = alltrue([for w in values(var.workers) : can(yamldecode(w.job_template_yaml).spec.template)])
    error_message = "job_template_yaml must be a JobTemplateSpec with spec.template."
  }

  validation {
    condition     = alltrue([for name in keys(var.workers) : can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", name))])
    error_message = "Worker names (the map keys) must be DNS labels."
  }
}
