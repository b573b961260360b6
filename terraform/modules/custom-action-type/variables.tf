variable "create" {
  description = "Whether to create anything. Set to false to keep the module call but manage nothing (the action types are then destroyed: read the README first)."
  type        = bool
  default     = true
}

variable "action_types" {
  description = <<-EOT
    Custom action types to create, keyed by a name of your choosing (the key in this
    module's outputs; the resources themselves are keyed by category/provider/version, so
    renaming a key changes nothing in AWS). Each entry mirrors CreateCustomActionType: `category`,
    `provider_name` and `version` identify the type (owner is always Custom);
    `settings` holds the console links (`execution_url_template` may use
    {ExternalExecutionId}, filled from the externalExecutionId cpworker reports);
    `configuration_properties` (at most 10; at most one `queryable`, which must be
    `required` and not `secret`); artifact counts 0-5.
  EOT
  type = map(object({
    category      = string
    provider_name = string
    version       = string
    settings = optional(object({
      entity_url_template           = optional(string)
      execution_url_template        = optional(string)
      revision_url_template         = optional(string)
      third_party_configuration_url = optional(string)
    }))
    configuration_properties = optional(list(object({
      name        = string
      description = optional(string)
      key         = optional(bool, true)
      required    = optional(bool, false)
      secret      = optional(bool, false)
      queryable   = optional(bool, false)
      type        = optional(string, "String")
    })), [])
    input_artifacts = optional(object({
      minimum_count = optional(number, 0)
      maximum_count = optional(number, 5)
    }), {})
    output_artifacts = optional(object({
      minimum_count = optional(number, 0)
      maximum_count = optional(number, 5)
    }), {})
    tags = optional(map(string), {})
  }))
  default = {}

  validation {
    condition = alltrue([
      for t in values(var.action_types) :
      contains(["Source", "Build", "Deploy", "Test", "Invoke", "Approval", "Compute"], t.category)
    ])
    error_message = "category must be one of Source, Build, Deploy, Test, Invoke, Approval, Compute (the ActionCategory enum of the CodePipeline API)."
  }

  validation {
    # The API model allows 35 characters; the user guide says 25. The model is what the
    # service enforces, so the module accepts 35 and the README warns about the guide.
    condition     = alltrue([for t in values(var.action_types) : can(regex("^[0-9A-Za-z_-]{1,35}$", t.provider_name))])
    error_message = "provider_name must match ^[0-9A-Za-z_-]{1,35}$ (CodePipeline API model)."
  }

  validation {
    condition     = alltrue([for t in values(var.action_types) : can(regex("^[0-9A-Za-z_-]{1,9}$", t.version))])
    error_message = "version must match ^[0-9A-Za-z_-]{1,9}$ (CodePipeline API model)."
  }

  validation {
    condition     = alltrue([for t in values(var.action_types) : length(t.configuration_properties) <= 10])
    error_message = "An action type has at most 10 configuration properties."
  }

  validation {
    condition = alltrue([
      for t in values(var.action_types) :
      length([for p in t.configuration_properties : p if p.queryable]) <= 1
    ])
    error_message = "An action type has at most one queryable configuration property."
  }

  validation {
    condition = alltrue(flatten([
      for t in values(var.action_types) : [
        for p in t.configuration_properties : p.required && !p.secret if p.queryable
      ]
    ]))
    error_message = "A queryable configuration property must be required and must not be secret."
  }

  validation {
    condition = alltrue(flatten([
      for t in values(var.action_types) : [
        for p in t.configuration_properties :
        length(p.name) >= 1 && length(p.name) <= 50 && contains(["String", "Number", "Boolean"], p.type)
      ]
    ]))
    error_message = "Configuration property names are 1-50 characters; type is String, Number or Boolean."
  }

  validation {
    condition = alltrue(flatten([
      for t in values(var.action_types) : [
        for p in t.configuration_properties : length(p.description == null ? "x" : p.description) <= 160
      ]
    ]))
    error_message = "A configuration property description is at most 160 characters."
  }

  validation {
    condition = alltrue(flatten([
      for t in values(var.action_types) : [
        for c in [t.input_artifacts, t.output_artifacts] :
        c.minimum_count >= 0 && c.maximum_count <= 5 && c.minimum_count <= c.maximum_count &&
        floor(c.minimum_count) == c.minimum_count && floor(c.maximum_count) == c.maximum_count
      ]
    ]))
    error_message = "Artifact counts are whole numbers with 0 <= minimum_count <= maximum_count <= 5."
  }

  validation {
    condition     = length(distinct([for t in values(var.action_types) : "${t.category}/${t.provider_name}/${t.version}"])) == length(var.action_types)
    error_message = "Two entries describe the same category/provider_name/version."
  }
}

variable "tags" {
  description = "Tags added to every action type (merged under each entry's own tags)."
  type        = map(string)
  default     = {}
}
