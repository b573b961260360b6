# The AWS side of the examples: the three custom action types of examples/codepipeline/ (read
# from the same JSON files the AWS CLI takes, so the two ways cannot drift apart), the
# wake-up event queue, and the operator's least-privilege IAM role. The Helm release is left
# to `helm install` with the values this root writes (output `helm_values`); see
# terraform/examples/complete for a root that installs the release with Terraform too.

provider "aws" {
  region = var.region
}

locals {
  # examples/codepipeline/action-type-<name>.json, as CreateCustomActionType takes them.
  definitions = {
    for name in var.action_type_files :
    name => jsondecode(file("${path.module}/../codepipeline/action-type-${name}.json"))
  }

  # The same definitions in the custom-action-type module's shape.
  action_types = {
    for name, d in local.definitions : name => {
      category      = d.category
      provider_name = d.provider
      version       = d.version
      settings = {
        entity_url_template           = try(d.settings.entityUrlTemplate, null)
        execution_url_template        = try(d.settings.executionUrlTemplate, null)
        revision_url_template         = try(d.settings.revisionUrlTemplate, null)
        third_party_configuration_url = try(d.settings.thirdPartyConfigurationUrl, null)
      }
      configuration_properties = [
        for p in try(d.configurationProperties, []) : {
          name        = p.name
          description = try(p.description, null)
          key         = p.key
          required    = p.required
          secret      = p.secret
          queryable   = try(p.queryable, false)
          type        = try(p.type, "String")
        }
      ]
      input_artifacts = {
        minimum_count = d.inputArtifactDetails.minimumCount
        maximum_count = d.inputArtifactDetails.maximumCount
      }
      output_artifacts = {
        minimum_count = d.outputArtifactDetails.minimumCount
        maximum_count = d.outputArtifactDetails.maximumCount
      }
      tags = { for t in try(d.tags, []) : t.key => t.value }
    }
  }
}

module "action_types" {
  source = "../../terraform/modules/custom-action-type"

  action_types = local.action_types
  tags         = var.tags
}

module "job_events" {
  source = "../../terraform/modules/job-events"

  create       = var.enable_event_wakeup
  name         = "cpworker-${var.cluster_name}-job-events"
  action_types = values(module.action_types.action_type_ids)
  tags         = var.tags
}

module "operator_iam" {
  source = "../../terraform/modules/operator-iam"

  name              = "cpworker-${var.cluster_name}"
  action_types      = values(module.action_types.action_type_ids)
  identity          = var.identity
  cluster_name      = var.cluster_name
  oidc_provider_arn = var.oidc_provider_arn
  namespace         = var.operator_namespace
  service_account   = var.operator_service_account
  event_queue_arns  = var.enable_event_wakeup ? [module.job_events.queue_arn] : []
  tags              = var.tags
}

locals {
  # What the chart needs from the AWS side; layered over examples/helm/values-namespaced.yaml.
  helm_values = merge(
    {
      aws = { region = var.region }
      serviceAccount = {
        name        = var.operator_service_account
        annotations = module.operator_iam.service_account_annotations
      }
    },
    var.enable_event_wakeup ? {
      events = { queueUrl = module.job_events.queue_url }
    } : {},
  )
}
