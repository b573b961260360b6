variable "create" {
  description = "Whether to create anything."
  type        = bool
  default     = true
}

variable "release_name" {
  description = "Helm release name."
  type        = string
  default     = "cpworker"
}

variable "namespace" {
  description = "Namespace of the operator (must match operator-iam's namespace)."
  type        = string
  default     = "cpworker-system"
}

variable "create_namespace" {
  description = "Let Helm create the operator's namespace."
  type        = bool
  default     = true
}

variable "chart" {
  description = "Chart to install: a path (default: this repository's helm/cpworker) or a chart name in `repository`."
  type        = string
  default     = null
}

variable "repository" {
  description = "Chart repository URL (or oci:// registry), when `chart` is a name."
  type        = string
  default     = null
}

variable "chart_version" {
  description = "Chart version, when installing from a repository."
  type        = string
  default     = null
}

variable "image" {
  description = "Operator image: repository, tag (empty: the chart's appVersion), digest, pull_policy."
  type = object({
    repository  = optional(string, "ghcr.io/cpworker/cpworker")
    tag         = optional(string, "")
    digest      = optional(string, "")
    pull_policy = optional(string, "IfNotPresent")
  })
  default = {}
}

variable "replica_count" {
  description = "Operator replicas (more than one turns on kopf peering)."
  type        = number
  default     = 1
}

variable "watch_namespaces" {
  description = "Namespaces whose CustomActionWorkers the operator serves. Empty: all."
  type        = list(string)
  default     = []
}

variable "worker_selector" {
  description = "Label selector of the CustomActionWorkers this release serves: one shard of a larger fleet (docs/scaling.md). Empty: every worker in watch_namespaces."
  type        = string
  default     = ""
}

variable "peering_name" {
  description = "kopf peering object of this release's replicas (replica_count > 1); each shard its own."
  type        = string
  default     = "cpworker"
}

variable "events_queue_url" {
  description = "The job-events module's queue_url: event-driven dispatch. Empty: polling only."
  type        = string
  default     = ""
}

variable "events_queue_region" {
  description = "Region of the events queue. Empty: the region in its URL."
  type        = string
  default     = ""
}

variable "aws_region" {
  description = "Default CodePipeline region for workers without spec.region. Empty: AWS_REGION from Pod Identity / IRSA."
  type        = string
  default     = ""
}

variable "log_format" {
  description = "json or text."
  type        = string
  default     = "json"
}

variable "log_level" {
  description = "DEBUG, INFO, WARNING, ERROR or CRITICAL."
  type        = string
  default     = "INFO"
}

variable "extra_env" {
  description = "Extra plain environment variables for the operator (CPWORKER_* settings...)."
  type        = map(string)
  default     = {}
}

variable "service_account_name" {
  description = "The operator's service account: operator-iam's service_account output."
  type        = string
  default     = "cpworker"
}

variable "create_service_account" {
  description = "Whether the chart creates the operator's service account."
  type        = bool
  default     = true
}

variable "service_account_annotations" {
  description = "operator-iam's service_account_annotations output (IRSA role annotation, or none)."
  type        = map(string)
  default     = {}
}

variable "crds" {
  description = "CRD handling: enabled (install with the chart), keep (on uninstall)."
  type = object({
    enabled = optional(bool, true)
    keep    = optional(bool, true)
  })
  default = {}
}

variable "extra_values" {
  description = "Further values documents (YAML strings) for the chart, applied after the module's own."
  type        = list(string)
  default     = []
}

variable "workers" {
  description = "CustomActionWorker resources (see modules/render for the shape). The CRD must exist before Terraform can plan these: see the README (two-step first apply)."
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
}

variable "timeout" {
  description = "Seconds Helm waits for the release to become ready."
  type        = number
  default     = 300
}
