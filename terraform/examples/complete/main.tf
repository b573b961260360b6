module "action_types" {
  source = "../../modules/custom-action-type"

  tags = var.tags
  action_types = {
    build = {
      category      = "Build"
      provider_name = var.provider_name
      version       = var.action_version
      settings = {
        # cpworker reports the Kubernetes Job name as the external execution id.
        execution_url_template = "https://console.aws.amazon.com/eks/home?region=${var.region}#/clusters/${var.cluster_name}"
      }
      configuration_properties = [
        { name = "Pool", description = "Which worker pool runs the job", required = true, queryable = true },
        { name = "Command", description = "Build command", required = false },
      ]
      input_artifacts  = { minimum_count = 1, maximum_count = 1 }
      output_artifacts = { minimum_count = 0, maximum_count = 1 }
    }
  }
}

module "job_events" {
  source = "../../modules/job-events"

  create       = var.enable_event_wakeup
  name         = "cpworker-${var.cluster_name}-job-events"
  action_types = values(module.action_types.action_type_ids)
  tags         = var.tags
}

module "operator_iam" {
  source = "../../modules/operator-iam"

  name              = "cpworker-${var.cluster_name}"
  action_types      = values(module.action_types.action_type_ids)
  identity          = var.identity
  cluster_name      = var.cluster_name
  oidc_provider_arn = var.oidc_provider_arn
  namespace         = "cpworker-system"
  service_account   = "cpworker"
  event_queue_arns  = var.enable_event_wakeup ? [module.job_events.queue_arn] : []
  tags              = var.tags
}

module "operator_release" {
  source = "../../modules/operator-release"

  namespace                   = module.operator_iam.namespace
  service_account_name        = module.operator_iam.service_account
  service_account_annotations = module.operator_iam.service_account_annotations
  aws_region                  = var.region
  image                       = { tag = var.operator_image_tag }
  watch_namespaces            = [var.worker_namespace]
  # The queue the job-events module feeds: a job's STARTED event wakes its worker at once.
  events_queue_url = var.enable_event_wakeup ? module.job_events.queue_url : ""

  workers = var.create_workers ? {
    gpu-builds = {
      namespace      = var.worker_namespace
      action_type_id = module.action_types.action_type_ids["build"]
      query_param    = { (module.action_types.queryable_properties["build"]) = var.pool }
      max_in_flight  = 5
      job_template_yaml = yamlencode({
        spec = {
          backoffLimit = 0
          template = {
            spec = {
              restartPolicy = "Never"
              containers = [{
                name    = "build"
                image   = var.builder_image
                command = ["sh", "-c", "echo building; ls -la"]
              }]
            }
          }
        }
      })
    }
  } : {}

  # The role must exist (and be associated) before the operator starts polling.
  depends_on = [module.operator_iam]
}
