data "aws_partition" "current" {
  count = var.create && var.partition == null ? 1 : 0
}

data "aws_region" "current" {
  count = var.create && var.region == null ? 1 : 0
}

data "aws_caller_identity" "current" {
  count = var.create && var.account_id == null ? 1 : 0
}

locals {
  partition  = var.partition != null ? var.partition : (var.create ? data.aws_partition.current[0].partition : "aws")
  region     = var.region != null ? var.region : (var.create ? data.aws_region.current[0].name : "")
  account_id = var.account_id != null ? var.account_id : (var.create ? data.aws_caller_identity.current[0].account_id : "")

  # The actiontype resource of the Service Authorization Reference:
  # arn:${Partition}:codepipeline:${Region}:${Account}:actiontype:${Owner}/${Category}/${Provider}/${Version}
  action_type_arns = distinct([
    for t in var.action_types :
    "arn:${local.partition}:codepipeline:${local.region}:${local.account_id}:actiontype:${t.owner}/${t.category}/${t.provider}/${t.version}"
  ])

  # The pipeline resource of the Service Authorization Reference (GetPipeline has no other):
  # arn:${Partition}:codepipeline:${Region}:${Account}:${PipelineName}
  pipeline_arns = distinct([
    for name in var.pipeline_names :
    "arn:${local.partition}:codepipeline:${local.region}:${local.account_id}:${name}"
  ])
  read_pipelines = var.read_pipelines && length(var.event_queue_arns) > 0

  # The OIDC provider ARN ends in the issuer without its scheme; the IRSA condition keys
  # are "<issuer>:sub" and "<issuer>:aud".
  oidc_issuer = var.oidc_provider_arn == null ? "" : element(split("oidc-provider/", var.oidc_provider_arn), 1)

  # Each trust document is encoded on its own: the two have different shapes.
  trust_pod_identity = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "EksPodIdentity"
      Effect    = "Allow"
      Principal = { Service = "pods.eks.amazonaws.com" }
      # Pod Identity tags the session with the cluster, namespace and service account.
      Action = ["sts:AssumeRole", "sts:TagSession"]
    }]
  })

  trust_irsa = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "EksIrsa"
      Effect    = "Allow"
      Principal = { Federated = var.oidc_provider_arn }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = {
          "${local.oidc_issuer}:sub" = "system:serviceaccount:${var.namespace}:${var.service_account}"
          "${local.oidc_issuer}:aud" = "sts.amazonaws.com"
        }
      }
    }]
  })
}

resource "aws_iam_role" "this" {
  count = var.create ? 1 : 0

  name                 = var.name
  path                 = var.path
  description          = "cpworker operator: CodePipeline custom action job worker"
  assume_role_policy   = var.identity == "irsa" ? local.trust_irsa : local.trust_pod_identity
  permissions_boundary = var.permissions_boundary
  max_session_duration = var.max_session_duration
  tags                 = var.tags

  lifecycle {
    precondition {
      condition     = var.identity != "irsa" || var.oidc_provider_arn != null
      error_message = "identity = \"irsa\" needs oidc_provider_arn."
    }
  }
}

resource "aws_iam_role_policy" "this" {
  count = var.create ? 1 : 0

  name = var.name
  role = aws_iam_role.this[0].id
  # The document is written out here (not assembled from locals) so that policy scanners
  # such as checkov can evaluate it.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # PollForJobs is the only job action with resource-level permissions (resource
        # type actiontype), so the operator can poll only for the types it serves.
        Sid      = "PollForOwnedActionTypes"
        Effect   = "Allow"
        Action   = "codepipeline:PollForJobs"
        Resource = local.action_type_arns
      },
      {
        # No resource types exist for these actions in the Service Authorization
        # Reference: IAM requires "*". A job id is an unguessable UUID handed out by
        # PollForJobs, which is scoped above.
        Sid    = "WorkOnPolledJobs"
        Effect = "Allow"
        Action = [
          "codepipeline:AcknowledgeJob",
          "codepipeline:GetJobDetails",
          "codepipeline:PutJobSuccessResult",
          "codepipeline:PutJobFailureResult",
        ]
        Resource = "*"
      },
      {
        # The operator reads which configuration properties are secret (to keep them out
        # of pod env and logs). A list call: it is not scoped to one action type.
        Sid      = "ReadActionTypeDefinitions"
        Effect   = "Allow"
        Action   = "codepipeline:ListActionTypes"
        Resource = "*"
      },
    ]
  })
}

resource "aws_iam_role_policy" "assume_worker_roles" {
  count = var.create && length(var.worker_role_arns) > 0 ? 1 : 0

  name = "${var.name}-assume-worker-roles"
  role = aws_iam_role.this[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      # Per-worker roles (a CustomActionWorker's spec.roleArn), and nothing else.
      Sid      = "AssumePerWorkerRoles"
      Effect   = "Allow"
      Action   = "sts:AssumeRole"
      Resource = var.worker_role_arns
    }]
  })
}

resource "aws_iam_role_policy" "read_event_queues" {
  count = var.create && length(var.event_queue_arns) > 0 ? 1 : 0

  name = "${var.name}-read-event-queues"
  role = aws_iam_role.this[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [{
        # Long-poll the wake-up events and delete them once read; nothing else on the queue.
        Sid      = "ReadWakeUpEvents"
        Effect   = "Allow"
        Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
        Resource = var.event_queue_arns
      }],
      local.read_pipelines ? [{
        # An event names the pipeline and action, not the queryParam: reading the action's
        # configuration (once per pipeline version) wakes only the worker whose queryParam
        # matches, instead of every worker of the action type.
        Sid      = "ReadPipelinesOfWakeUpEvents"
        Effect   = "Allow"
        Action   = "codepipeline:GetPipeline"
        Resource = local.pipeline_arns
      }] : [],
    )
  })
}

resource "aws_eks_pod_identity_association" "this" {
  count = var.create && var.identity == "pod_identity" && var.create_pod_identity_association ? 1 : 0

  cluster_name    = var.cluster_name
  namespace       = var.namespace
  service_account = var.service_account
  role_arn        = aws_iam_role.this[0].arn
  tags            = var.tags

  lifecycle {
    precondition {
      condition     = var.cluster_name != null
      error_message = "identity = \"pod_identity\" with create_pod_identity_association needs cluster_name."
    }
  }
}
