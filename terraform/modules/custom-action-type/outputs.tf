output "action_types" {
  description = "The created action types, keyed by the caller's map key: id, arn, owner, category, provider_name, version."
  value = {
    for name, identity in local.identity_by_name : name => {
      id            = aws_codepipeline_custom_action_type.this[identity].id
      arn           = aws_codepipeline_custom_action_type.this[identity].arn
      owner         = aws_codepipeline_custom_action_type.this[identity].owner
      category      = aws_codepipeline_custom_action_type.this[identity].category
      provider_name = aws_codepipeline_custom_action_type.this[identity].provider_name
      version       = aws_codepipeline_custom_action_type.this[identity].version
    }
  }
}

output "arns" {
  description = "ARNs of the created action types, keyed by the caller's map key."
  value       = { for name, identity in local.identity_by_name : name => aws_codepipeline_custom_action_type.this[identity].arn }
}

output "action_type_ids" {
  description = "Keyed by the caller's map key: objects shaped like a CustomActionWorker's spec.actionTypeId ({category, owner, provider, version}), ready to put in a manifest."
  value = {
    for name, identity in local.identity_by_name : name => {
      category = local.action_types[identity].category
      owner    = "Custom"
      provider = local.action_types[identity].provider_name
      version  = local.action_types[identity].version
    }
  }
}

output "queryable_properties" {
  description = "Keyed by the caller's map key: the name of the queryable configuration property, or null. A CustomActionWorker's spec.queryParam must use this key."
  value = {
    for name, identity in local.identity_by_name : name => one([
      for p in local.action_types[identity].configuration_properties : p.name if p.queryable
    ])
  }
}
