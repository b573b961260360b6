locals {
  # Every key here exists in helm/cpworker/values.yaml (a test checks it): the chart's
  # values.schema.json rejects unknown keys, so a typo here would fail the release.
  chart_values = {
    image = {
      repository = var.image.repository
      tag        = var.image.tag
      digest     = var.image.digest
      pullPolicy = var.image.pull_policy
    }
    replicaCount = var.replica_count
    peering = {
      # The chart requires peering for more than one replica; shards need names of their own.
      enabled = var.replica_count > 1
      name    = var.peering_name
    }
    watchNamespaces = var.watch_namespaces
    workerSelector  = var.worker_selector
    aws = {
      region = var.aws_region
    }
    events = {
      queueUrl = var.events_queue_url
      region   = var.events_queue_region
    }
    logging = {
      format = var.log_format
      level  = var.log_level
    }
    extraEnv = [for name in sort(keys(var.extra_env)) : { name = name, value = var.extra_env[name] }]
    serviceAccount = {
      create      = var.create_service_account
      name        = var.service_account_name
      annotations = var.service_account_annotations
    }
    crds = {
      enabled = var.crds.enabled
      keep    = var.crds.keep
    }
  }

  worker_manifests = {
    for name, w in var.workers : name => {
      apiVersion = "cpworker.io/v1alpha1"
      kind       = "CustomActionWorker"
      metadata = {
        name      = name
        namespace = w.namespace
        labels    = merge({ "app.kubernetes.io/managed-by" = "terraform" }, w.labels)
      }
      spec = merge(
        {
          actionTypeId = w.action_type_id
          queryParam   = w.query_param
          jobTemplate  = yamldecode(w.job_template_yaml)
        },
        # Optional fields are left out rather than sent as null, so the CRD's defaults apply.
        w.max_in_flight == null ? {} : { maxInFlight = w.max_in_flight },
        w.max_batch_size == null ? {} : { maxBatchSize = w.max_batch_size },
        w.region == null ? {} : { region = w.region },
        w.role_arn == null ? {} : { roleArn = w.role_arn },
        w.paused == null ? {} : { paused = w.paused },
      )
    }
  }
}
