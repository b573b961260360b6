# The render module has no providers: these runs evaluate it for real.
variables {
  service_account_name        = "cpw"
  service_account_annotations = { "eks.amazonaws.com/role-arn" = "arn:aws:iam::123456789012:role/cpworker" }
  aws_region                  = "eu-west-1"
  extra_env                   = { CPWORKER_B = "2", CPWORKER_A = "1" }
  workers = {
    gpu-builds = {
      namespace      = "ci"
      action_type_id = { category = "Build", owner = "Custom", provider = "AcmeGpuBuild", version = "1" }
      query_param    = { Pool = "gpu-a100" }
      max_in_flight  = 20
      job_template_yaml = yamlencode({
        spec = { template = { spec = { containers = [{ name = "build", image = "ghcr.io/acme/builder:2026.11" }] } } }
      })
    }
  }
}

run "chart_values_carry_identity_and_settings" {
  command = plan
  assert {
    condition     = jsonencode(output.chart_values.serviceAccount) == jsonencode({ create = true, name = "cpw", annotations = { "eks.amazonaws.com/role-arn" = "arn:aws:iam::123456789012:role/cpworker" } })
    error_message = "service account must carry the name and annotations the IAM role trusts"
  }
  assert {
    condition     = output.chart_values.aws.region == "eu-west-1"
    error_message = "region not passed"
  }
  assert {
    condition     = jsonencode(output.chart_values.extraEnv) == jsonencode([{ name = "CPWORKER_A", value = "1" }, { name = "CPWORKER_B", value = "2" }])
    error_message = "extraEnv must be EnvVar objects sorted by name"
  }
  assert {
    condition     = output.chart_values.peering.enabled == false
    error_message = "one replica needs no peering"
  }
}

run "worker_manifest_is_a_custom_action_worker" {
  command = plan
  assert {
    condition     = output.worker_manifests["gpu-builds"].apiVersion == "cpworker.io/v1alpha1" && output.worker_manifests["gpu-builds"].kind == "CustomActionWorker"
    error_message = "wrong apiVersion/kind"
  }
  assert {
    condition     = output.worker_manifests["gpu-builds"].metadata.namespace == "ci" && output.worker_manifests["gpu-builds"].metadata.name == "gpu-builds"
    error_message = "wrong metadata"
  }
  assert {
    condition     = output.worker_manifests["gpu-builds"].spec.maxInFlight == 20 && jsonencode(output.worker_manifests["gpu-builds"].spec.queryParam) == jsonencode({ Pool = "gpu-a100" })
    error_message = "spec fields not passed"
  }
  assert {
    condition     = !can(output.worker_manifests["gpu-builds"].spec.region) && !can(output.worker_manifests["gpu-builds"].spec.roleArn)
    error_message = "unset optional fields must be left out, not null"
  }
  assert {
    condition     = output.worker_manifests["gpu-builds"].spec.jobTemplate.spec.template.spec.containers[0].image == "ghcr.io/acme/builder:2026.11"
    error_message = "job template not decoded"
  }
}

run "events_queue_and_shard_reach_the_chart" {
  command = plan
  variables {
    events_queue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/cpworker-job-events"
    worker_selector  = "shard=a"
    peering_name     = "cpworker-a"
  }
  assert {
    condition     = jsonencode(output.chart_values.events) == jsonencode({ queueUrl = "https://sqs.eu-west-1.amazonaws.com/123456789012/cpworker-job-events", region = "" })
    error_message = "the events queue must reach events.queueUrl"
  }
  assert {
    condition     = output.chart_values.workerSelector == "shard=a" && output.chart_values.peering.name == "cpworker-a"
    error_message = "the shard's selector and peering name must reach the chart"
  }
}

run "polling_only_by_default" {
  command = plan
  assert {
    condition     = output.chart_values.events.queueUrl == "" && output.chart_values.workerSelector == ""
    error_message = "no queue and no selector unless given"
  }
}

run "rejects_a_queue_name_for_its_url" {
  command = plan
  variables {
    events_queue_url = "cpworker-job-events"
  }
  expect_failures = [var.events_queue_url]
}

run "more_replicas_turn_on_peering" {
  command = plan
  variables {
    replica_count = 2
  }
  assert {
    condition     = output.chart_values.peering.enabled && output.chart_values.replicaCount == 2
    error_message = "two replicas need peering"
  }
}

run "rejects_two_query_params" {
  command = plan
  variables {
    workers = {
      w = {
        namespace         = "ci"
        action_type_id    = { category = "Build", provider = "A", version = "1" }
        query_param       = { A = "a", B = "b" }
        job_template_yaml = "spec: {template: {spec: {containers: []}}}"
      }
    }
  }
  expect_failures = [var.workers]
}

run "rejects_bad_query_value" {
  command = plan
  variables {
    workers = {
      w = {
        namespace         = "ci"
        action_type_id    = { category = "Build", provider = "A", version = "1" }
        query_param       = { Pool = "gpu a100" }
        job_template_yaml = "spec: {template: {spec: {containers: []}}}"
      }
    }
  }
  expect_failures = [var.workers]
}

run "rejects_template_without_pod_template" {
  command = plan
  variables {
    workers = {
      w = {
        namespace         = "ci"
        action_type_id    = { category = "Build", provider = "A", version = "1" }
        job_template_yaml = "spec: {}"
      }
    }
  }
  expect_failures = [var.workers]
}

run "rejects_bad_digest" {
  command = plan
  variables {
    image = { digest = "latest" }
  }
  expect_failures = [var.image]
}

run "rejects_unknown_log_format" {
  command = plan
  variables {
    log_format = "xml"
  }
  expect_failures = [var.log_format]
}
