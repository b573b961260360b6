locals {
  # CodePipeline publishes "CodePipeline Action Execution State Change" events; STARTED for a
  # Custom action means a job is about to be offered to PollForJobs, and FAILED, CANCELED or
  # ABANDONED that an action may have ended under a running job (a stopped or superseded
  # pipeline): the operator probes that job at once, which is what lets it probe running
  # jobs rarely while the queue is healthy. SUCCEEDED is left out: the operator's own
  # results cause those. Fields in a pattern match independently, so several types may also
  # match their cross-product: harmless for hints that only say "poll now" or "probe now".
  event_pattern = {
    source      = ["aws.codepipeline"]
    detail-type = ["CodePipeline Action Execution State Change"]
    detail = {
      state = ["STARTED", "FAILED", "CANCELED", "ABANDONED"]
      type = {
        owner    = ["Custom"]
        category = sort(distinct([for t in var.action_types : t.category]))
        provider = sort(distinct([for t in var.action_types : t.provider]))
        version  = sort(distinct([for t in var.action_types : t.version]))
      }
    }
  }
}

resource "aws_sqs_queue" "this" {
  count = var.create ? 1 : 0

  name                      = var.name
  message_retention_seconds = var.message_retention_seconds
  # Long polling: the operator learns of an event within a second without busy-waiting.
  receive_wait_time_seconds         = 20
  sqs_managed_sse_enabled           = var.kms_master_key_id == null ? true : null
  kms_master_key_id                 = var.kms_master_key_id
  kms_data_key_reuse_period_seconds = var.kms_master_key_id == null ? null : 300
  tags                              = var.tags
}

resource "aws_cloudwatch_event_rule" "this" {
  count = var.create ? 1 : 0

  name          = var.name
  description   = "cpworker: wake the operator when a custom action it serves starts or ends early"
  event_pattern = jsonencode(local.event_pattern)
  tags          = var.tags
}

resource "aws_cloudwatch_event_target" "this" {
  count = var.create ? 1 : 0

  rule = aws_cloudwatch_event_rule.this[0].name
  arn  = aws_sqs_queue.this[0].arn
}

resource "aws_sqs_queue_policy" "this" {
  count = var.create ? 1 : 0

  queue_url = aws_sqs_queue.this[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      # Only this rule may deliver to the queue.
      Sid       = "EventBridgeRuleDelivers"
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.this[0].arn
      Condition = { ArnEquals = { "aws:SourceArn" = aws_cloudwatch_event_rule.this[0].arn } }
    }]
  })
}
