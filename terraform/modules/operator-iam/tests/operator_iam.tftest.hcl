# Plan-level tests with a mocked AWS provider. Policies are built with jsonencode(), so the
# planned documents are the real ones and can be decoded and inspected here.
mock_provider "aws" {
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
}

variables {
  cluster_name = "prod"
  action_types = [
    { category = "Build", provider = "AcmeGpuBuild", version = "1" },
    { category = "Test", provider = "AcmeTest", version = "2", owner = "Custom" },
  ]
}

run "pod_identity_is_the_default" {
  command = plan

  assert {
    condition     = jsondecode(aws_iam_role.this[0].assume_role_policy).Statement[0].Principal == { Service = "pods.eks.amazonaws.com" }
    error_message = "Pod Identity trust must name pods.eks.amazonaws.com"
  }
  assert {
    condition     = toset(jsondecode(aws_iam_role.this[0].assume_role_policy).Statement[0].Action) == toset(["sts:AssumeRole", "sts:TagSession"])
    error_message = "Pod Identity needs sts:AssumeRole and sts:TagSession"
  }
  assert {
    condition     = length(jsondecode(aws_iam_role.this[0].assume_role_policy).Statement) == 1
    error_message = "exactly one trust statement"
  }
  assert {
    condition = (
      aws_eks_pod_identity_association.this[0].cluster_name == "prod" &&
      aws_eks_pod_identity_association.this[0].namespace == "cpworker-system" &&
      aws_eks_pod_identity_association.this[0].service_account == "cpworker"
    )
    error_message = "association must bind the operator's service account"
  }
  assert {
    condition     = length(output.service_account_annotations) == 0
    error_message = "no IRSA annotation with Pod Identity"
  }
}

run "poll_is_scoped_to_the_action_types" {
  command = plan

  assert {
    condition = [for s in jsondecode(aws_iam_role_policy.this[0].policy).Statement : s.Resource if s.Action == "codepipeline:PollForJobs"][0] == [
      "arn:aws:codepipeline:eu-west-1:123456789012:actiontype:Custom/Build/AcmeGpuBuild/1",
      "arn:aws:codepipeline:eu-west-1:123456789012:actiontype:Custom/Test/AcmeTest/2",
    ]
    error_message = "PollForJobs must be allowed on exactly the listed action types (region and account from the provider)"
  }
  assert {
    condition = toset(flatten([for s in jsondecode(aws_iam_role_policy.this[0].policy).Statement : s.Action if s.Resource == "*"])) == toset([
      "codepipeline:AcknowledgeJob", "codepipeline:GetJobDetails", "codepipeline:PutJobSuccessResult",
      "codepipeline:PutJobFailureResult", "codepipeline:ListActionTypes",
    ])
    error_message = "only the job actions without resource types (and ListActionTypes) may use Resource \"*\""
  }
  assert {
    condition     = alltrue([for s in jsondecode(aws_iam_role_policy.this[0].policy).Statement : s.Effect == "Allow" && !contains(flatten([s.Action]), "*")])
    error_message = "no wildcard actions"
  }
  assert {
    condition     = length([for s in jsondecode(aws_iam_role_policy.this[0].policy).Statement : s if contains(flatten([s.Action]), "sts:AssumeRole")]) == 0
    error_message = "no sts:AssumeRole in the CodePipeline policy"
  }
  assert {
    condition     = length(aws_iam_role_policy.assume_worker_roles) == 0
    error_message = "no sts:AssumeRole policy without worker roles"
  }
  assert {
    condition     = length(aws_iam_role_policy.read_event_queues) == 0
    error_message = "no SQS policy without event queues"
  }
  assert {
    condition     = output.policy_json == aws_iam_role_policy.this[0].policy
    error_message = "policy_json output must be the attached policy"
  }
}

run "explicit_partition_region_and_account_win" {
  command = plan
  variables {
    partition    = "aws-us-gov"
    region       = "us-gov-west-1"
    account_id   = "210987654321"
    action_types = [{ category = "Deploy", provider = "X", version = "9" }]
  }
  assert {
    condition     = output.action_type_arns == tolist(["arn:aws-us-gov:codepipeline:us-gov-west-1:210987654321:actiontype:Custom/Deploy/X/9"])
    error_message = "explicit partition/region/account must be used in the ARN"
  }
}

run "worker_roles_are_assumable" {
  command = plan
  variables {
    worker_role_arns = ["arn:aws:iam::123456789012:role/ci-gpu", "arn:aws:iam::123456789012:role/ci-arm"]
  }
  assert {
    condition = [for s in jsondecode(aws_iam_role_policy.assume_worker_roles[0].policy).Statement : s.Resource if s.Action == "sts:AssumeRole"] == [
      ["arn:aws:iam::123456789012:role/ci-gpu", "arn:aws:iam::123456789012:role/ci-arm"],
    ]
    error_message = "sts:AssumeRole must be allowed on exactly the listed worker roles"
  }
  assert {
    condition     = length(jsondecode(aws_iam_role_policy.assume_worker_roles[0].policy).Statement) == 1
    error_message = "the worker-role policy holds nothing else"
  }
}

run "irsa_trust_pins_service_account_and_audience" {
  command = plan
  variables {
    identity          = "irsa"
    namespace         = "ops"
    service_account   = "cpw"
    oidc_provider_arn = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC123"
  }
  assert {
    condition     = jsondecode(aws_iam_role.this[0].assume_role_policy).Statement[0].Principal == { Federated = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC123" }
    error_message = "IRSA trust must name the OIDC provider"
  }
  assert {
    condition     = jsondecode(aws_iam_role.this[0].assume_role_policy).Statement[0].Action == "sts:AssumeRoleWithWebIdentity"
    error_message = "IRSA uses sts:AssumeRoleWithWebIdentity"
  }
  assert {
    condition = jsondecode(aws_iam_role.this[0].assume_role_policy).Statement[0].Condition == {
      StringEquals = {
        "oidc.eks.eu-west-1.amazonaws.com/id/ABC123:sub" = "system:serviceaccount:ops:cpw"
        "oidc.eks.eu-west-1.amazonaws.com/id/ABC123:aud" = "sts.amazonaws.com"
      }
    }
    error_message = "IRSA trust must pin sub to the service account and aud to STS"
  }
  assert {
    condition     = length(aws_eks_pod_identity_association.this) == 0
    error_message = "no Pod Identity association with IRSA"
  }
  assert {
    condition     = keys(output.service_account_annotations) == tolist(["eks.amazonaws.com/role-arn"])
    error_message = "IRSA needs the role annotation on the service account"
  }
}

run "pod_identity_without_association" {
  command = plan
  variables {
    cluster_name                    = null
    create_pod_identity_association = false
  }
  assert {
    condition     = length(aws_eks_pod_identity_association.this) == 0 && length(aws_iam_role.this) == 1
    error_message = "role without association expected"
  }
}

run "create_false_creates_nothing" {
  command = plan
  variables {
    create = false
  }
  assert {
    condition     = length(aws_iam_role.this) + length(aws_iam_role_policy.this) + length(aws_iam_role_policy.assume_worker_roles) + length(aws_iam_role_policy.read_event_queues) + length(aws_eks_pod_identity_association.this) == 0
    error_message = "create = false must plan nothing"
  }
}

run "rejects_unknown_identity_mode" {
  command = plan
  variables {
    identity = "kiam"
  }
  expect_failures = [var.identity]
}

run "rejects_empty_action_types" {
  command = plan
  variables {
    action_types = []
  }
  expect_failures = [var.action_types]
}

run "rejects_non_custom_owner" {
  command = plan
  variables {
    action_types = [{ category = "Build", provider = "CodeBuild", version = "1", owner = "AWS" }]
  }
  expect_failures = [var.action_types]
}

run "rejects_bad_worker_role_arn" {
  command = plan
  variables {
    worker_role_arns = ["ci-gpu"]
  }
  expect_failures = [var.worker_role_arns]
}

run "irsa_requires_oidc_provider" {
  command = plan
  variables {
    identity = "irsa"
  }
  expect_failures = [aws_iam_role.this]
}

run "pod_identity_association_requires_cluster_name" {
  command = plan
  variables {
    cluster_name = null
  }
  expect_failures = [aws_eks_pod_identity_association.this]
}

run "rejects_session_duration_out_of_range" {
  command = plan
  variables {
    max_session_duration = 60
  }
  expect_failures = [var.max_session_duration]
}

run "event_queues_are_readable" {
  command = plan
  variables {
    event_queue_arns = ["arn:aws:sqs:eu-west-1:123456789012:cpworker-job-events"]
  }
  assert {
    condition = jsondecode(aws_iam_role_policy.read_event_queues[0].policy).Statement[0].Resource == [
      "arn:aws:sqs:eu-west-1:123456789012:cpworker-job-events",
    ]
    error_message = "SQS read must be allowed on exactly the listed queues"
  }
  assert {
    condition     = toset(jsondecode(aws_iam_role_policy.read_event_queues[0].policy).Statement[0].Action) == toset(["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"])
    error_message = "receive, delete and attributes only"
  }
}

run "events_read_the_pipelines_of_their_actions" {
  command = plan
  variables {
    event_queue_arns = ["arn:aws:sqs:eu-west-1:123456789012:cpworker-job-events"]
  }
  assert {
    condition = [for s in jsondecode(aws_iam_role_policy.read_event_queues[0].policy).Statement : s.Resource if s.Action == "codepipeline:GetPipeline"] == [
      ["arn:aws:codepipeline:eu-west-1:123456789012:*"],
    ]
    error_message = "GetPipeline must be allowed on the pipelines of the action types' account and region only"
  }
  assert {
    condition     = length(jsondecode(aws_iam_role_policy.read_event_queues[0].policy).Statement) == 2
    error_message = "the events policy holds the SQS read and GetPipeline, nothing else"
  }
  assert {
    condition     = length([for s in jsondecode(aws_iam_role_policy.this[0].policy).Statement : s if s.Action == "codepipeline:GetPipeline"]) == 0
    error_message = "GetPipeline belongs to the events policy, not the job policy"
  }
}

run "get_pipeline_scoped_to_listed_pipelines" {
  command = plan
  variables {
    event_queue_arns = ["arn:aws:sqs:eu-west-1:123456789012:cpworker-job-events"]
    pipeline_names   = ["gpu-*", "release"]
  }
  assert {
    condition = [for s in jsondecode(aws_iam_role_policy.read_event_queues[0].policy).Statement : s.Resource if s.Action == "codepipeline:GetPipeline"][0] == [
      "arn:aws:codepipeline:eu-west-1:123456789012:gpu-*",
      "arn:aws:codepipeline:eu-west-1:123456789012:release",
    ]
    error_message = "GetPipeline must be allowed on exactly the listed pipelines"
  }
}

run "get_pipeline_is_optional" {
  command = plan
  variables {
    event_queue_arns = ["arn:aws:sqs:eu-west-1:123456789012:cpworker-job-events"]
    read_pipelines   = false
  }
  assert {
    condition     = length(jsondecode(aws_iam_role_policy.read_event_queues[0].policy).Statement) == 1 && jsondecode(aws_iam_role_policy.read_event_queues[0].policy).Statement[0].Sid == "ReadWakeUpEvents"
    error_message = "read_pipelines = false leaves only the SQS read"
  }
}

run "rejects_a_pipeline_name_with_a_path" {
  command = plan
  variables {
    event_queue_arns = ["arn:aws:sqs:eu-west-1:123456789012:cpworker-job-events"]
    pipeline_names   = ["x/y"]
  }
  expect_failures = [var.pipeline_names]
}

run "rejects_non_sqs_event_queue" {
  command = plan
  variables {
    event_queue_arns = ["arn:aws:sns:eu-west-1:123456789012:topic"]
  }
  expect_failures = [var.event_queue_arns]
}
