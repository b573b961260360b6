variable "create" {
  description = "Whether to create anything (the queue is an opt-in wake-up hint for the operator; polling works without it)."
  type        = bool
  default     = true
}

variable "name" {
  description = "Name of the SQS queue and of the EventBridge rule."
  type        = string
  default     = "cpworker-job-events"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.name))
    error_message = "name is 1-64 characters of [A-Za-z0-9_-] (an EventBridge rule name and a standard SQS queue name)."
  }
}

variable "action_types" {
  description = "The custom action types whose action executions the operator hears of (STARTED wakes its workers; FAILED, CANCELED and ABANDONED probe a running job at once): a list of {category, provider, version} (custom-action-type's action_type_ids values fit)."
  type = list(object({
    category = string
    provider = string
    version  = string
    owner    = optional(string, "Custom")
  }))

  validation {
    condition     = length(var.action_types) > 0
    error_message = "List at least one action type."
  }

  validation {
    condition     = alltrue([for t in var.action_types : t.owner == "Custom"])
    error_message = "Only Custom action types produce jobs for a worker."
  }
}

variable "message_retention_seconds" {
  description = "How long an event waits in the queue. Events are hints to poll now: a stale one is worthless, so keep this short (60-1209600)."
  type        = number
  default     = 300

  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600
    error_message = "message_retention_seconds is 60-1209600 (SQS's range)."
  }
}

variable "kms_master_key_id" {
  description = "KMS key for the queue. Null: SQS-managed server-side encryption."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
