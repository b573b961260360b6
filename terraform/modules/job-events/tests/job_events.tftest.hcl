# Computed ARNs are validated by the provider even when mocked: give them a real shape.
mock_provider "aws" {
  mock_resource "aws_sqs_queue" {
    defaults = {
      arn = "arn:aws:sqs:eu-west-1:123456789012:cpworker-job-events"
      id  = "https://sqs.eu-west-1.amazonaws.com/123456789012/cpworker-job-events"
    }
  }
  mock_resource "aws_cloudwatch_event_rule" {
    defaults = {
      arn = "arn:aws:events:eu-west-1:123456789012:rule/cpworker-job-events"
    }
  }
}

variables {
  action_types = [
    { category = "Build", provider = "AcmeGpuBuild", version = "1" },
    { category = "Build", provider = "AcmeArmBuild", version = "1" },
  ]
}

run "rule_matches_started_and_early_ended_custom_actions_of_the_served_types" {
  command = plan
  assert {
    condition = jsondecode(aws_cloudwatch_event_rule.this[0].event_pattern) == {
      source      = ["aws.codepipeline"]
      detail-type = ["CodePipeline Action Execution State Change"]
      detail = {
        state = ["STARTED", "FAILED", "CANCELED", "ABANDONED"]
        type = {
          owner    = ["Custom"]
          category = ["Build"]
          provider = ["AcmeArmBuild", "AcmeGpuBuild"]
          version  = ["1"]
        }
      }
    }
    error_message = "event pattern must select STARTED, FAILED, CANCELED and ABANDONED executions of the served custom action types"
  }
  assert {
    condition     = aws_sqs_queue.this[0].sqs_managed_sse_enabled == true && aws_sqs_queue.this[0].receive_wait_time_seconds == 20
    error_message = "queue must be encrypted and long-polled"
  }
  assert {
    condition     = aws_sqs_queue.this[0].message_retention_seconds == 300
    error_message = "hints go stale: short retention by default"
  }
}

# Planned on an empty state (before the apply below), like a first deployment.
run "customer_managed_key_replaces_sse_sqs" {
  command = plan
  variables {
    kms_master_key_id = "alias/cpworker"
  }
  assert {
    condition     = aws_sqs_queue.this[0].kms_master_key_id == "alias/cpworker"
    error_message = "the customer managed key must be used"
  }
}

run "only_the_rule_may_send" {
  command = apply
  assert {
    condition     = jsondecode(aws_sqs_queue_policy.this[0].policy).Statement[0].Principal == { Service = "events.amazonaws.com" }
    error_message = "EventBridge delivers"
  }
  assert {
    condition     = jsondecode(aws_sqs_queue_policy.this[0].policy).Statement[0].Condition.ArnEquals["aws:SourceArn"] == "arn:aws:events:eu-west-1:123456789012:rule/cpworker-job-events"
    error_message = "the queue policy must be limited to this rule"
  }
  assert {
    condition     = jsondecode(aws_sqs_queue_policy.this[0].policy).Statement[0].Action == "sqs:SendMessage" && length(jsondecode(aws_sqs_queue_policy.this[0].policy).Statement) == 1
    error_message = "send only"
  }
  assert {
    condition     = aws_cloudwatch_event_target.this[0].arn == aws_sqs_queue.this[0].arn
    error_message = "the rule targets the queue"
  }
}

run "create_false_creates_nothing" {
  command = plan
  variables {
    create = false
  }
  assert {
    condition     = length(aws_sqs_queue.this) + length(aws_cloudwatch_event_rule.this) + length(aws_cloudwatch_event_target.this) + length(aws_sqs_queue_policy.this) == 0
    error_message = "create = false must plan nothing"
  }
}

run "rejects_non_custom_types" {
  command = plan
  variables {
    action_types = [{ category = "Build", provider = "CodeBuild", version = "1", owner = "AWS" }]
  }
  expect_failures = [var.action_types]
}

run "rejects_too_short_retention" {
  command = plan
  variables {
    message_retention_seconds = 10
  }
  expect_failures = [var.message_retention_seconds]
}
