locals {
  # Instances are keyed by the action type's identity, not by the caller's map key, so
  # renaming a key never plans a replacement (a replacement deletes a version for good).
  action_types = var.create ? {
    for name, t in var.action_types : "${t.category}/${t.provider_name}/${t.version}" => merge(t, { name = name })
  } : {}

  identity_by_name = { for identity, t in local.action_types : t.name => identity }

  # The definition as CodePipeline stores it, normalised so that the desired value (from
  # the variable) and the deployed value (from state) compare equal when they match.
  desired_definitions = {
    for identity, t in local.action_types : identity => jsonencode({
      settings = t.settings == null ? local.empty_settings : {
        for k, v in t.settings : k => v == null ? "" : v
      }
      properties = [
        for p in t.configuration_properties : {
          name        = p.name
          description = p.description == null ? "" : p.description
          key         = p.key
          required    = p.required
          secret      = p.secret
          queryable   = p.queryable
          type        = p.type == null ? "" : p.type
        }
      ]
      input  = [t.input_artifacts.minimum_count, t.input_artifacts.maximum_count]
      output = [t.output_artifacts.minimum_count, t.output_artifacts.maximum_count]
    })
  }

  empty_settings = {
    entity_url_template           = ""
    execution_url_template        = ""
    revision_url_template         = ""
    third_party_configuration_url = ""
  }
}

resource "aws_codepipeline_custom_action_type" "this" {
  for_each = local.action_types

  category      = each.value.category
  provider_name = each.value.provider_name
  version       = each.value.version

  dynamic "settings" {
    for_each = each.value.settings == null ? [] : [each.value.settings]
    content {
      entity_url_template           = settings.value.entity_url_template
      execution_url_template        = settings.value.execution_url_template
      revision_url_template         = settings.value.revision_url_template
      third_party_configuration_url = settings.value.third_party_configuration_url
    }
  }

  dynamic "configuration_property" {
    for_each = each.value.configuration_properties
    content {
      name        = configuration_property.value.name
      description = configuration_property.value.description
      key         = configuration_property.value.key
      required    = configuration_property.value.required
      secret      = configuration_property.value.secret
      queryable   = configuration_property.value.queryable
      type        = configuration_property.value.type
    }
  }

  input_artifact_details {
    minimum_count = each.value.input_artifacts.minimum_count
    maximum_count = each.value.input_artifacts.maximum_count
  }

  output_artifact_details {
    minimum_count = each.value.output_artifacts.minimum_count
    maximum_count = each.value.output_artifacts.maximum_count
  }

  tags = merge(var.tags, each.value.tags)

  lifecycle {
    # CodePipeline action types are immutable: the provider can only "change" a definition
    # by deleting the version and creating it again, and a deleted version can never be
    # created again. So a definition edit must never reach the API: it is ignored here and
    # reported by the check "definitions_are_immutable" below. Publish a new version instead.
    # (prevent_destroy cannot be set from a variable, and hard-coding it would make the
    # deliberate retirement of a version impossible without editing this module.)
    ignore_changes = [settings, configuration_property, input_artifact_details, output_artifact_details]
  }
}

check "definitions_are_immutable" {
  # With ignore_changes the planned value of an ignored block is the deployed one, so a
  # difference here means the caller edited a published definition.
  assert {
    condition = alltrue([
      for identity, r in aws_codepipeline_custom_action_type.this :
      local.desired_definitions[identity] == jsonencode({
        settings = length(r.settings) == 0 ? local.empty_settings : {
          for k, v in r.settings[0] : k => v == null ? "" : v
        }
        properties = [
          for p in r.configuration_property : {
            name        = p.name
            description = p.description == null ? "" : p.description
            key         = p.key
            required    = p.required
            secret      = p.secret
            queryable   = p.queryable == null ? false : p.queryable
            type        = p.type == null ? "" : p.type
          }
        ]
        input  = [r.input_artifact_details[0].minimum_count, r.input_artifact_details[0].maximum_count]
        output = [r.output_artifact_details[0].minimum_count, r.output_artifact_details[0].maximum_count]
      })
    ])
    error_message = "A published custom action type definition was edited. CodePipeline action types are immutable and a deleted version can never be re-created: the edit was NOT applied. Add a new entry with a new version instead (and remove the old one once no pipeline uses it)."
  }
}
