# Plan-level tests with a mocked AWS provider: no credentials, no network.
mock_provider "aws" {}

variables {
  tags = { team = "platform" }
  action_types = {
    gpu = {
      category      = "Build"
      provider_name = "AcmeGpuBuild"
      version       = "1"
      settings = {
        execution_url_template = "https://ci.example.com/jobs/{ExternalExecutionId}"
      }
      configuration_properties = [
        { name = "Pool", required = true, queryable = true, description = "Worker pool" },
        { name = "Token", required = false, secret = true, key = false },
      ]
      input_artifacts  = { minimum_count = 1, maximum_count = 2 }
      output_artifacts = { minimum_count = 0, maximum_count = 1 }
      tags             = { cost-center = "ci" }
    }
  }
}

run "plans_one_action_type_with_its_definition" {
  command = plan

  assert {
    condition     = length(aws_codepipeline_custom_action_type.this) == 1
    error_message = "expected exactly one action type"
  }
  assert {
    condition     = aws_codepipeline_custom_action_type.this["Build/AcmeGpuBuild/1"].provider_name == "AcmeGpuBuild"
    error_message = "instances must be keyed by category/provider/version"
  }
  assert {
    condition     = aws_codepipeline_custom_action_type.this["Build/AcmeGpuBuild/1"].settings[0].execution_url_template == "https://ci.example.com/jobs/{ExternalExecutionId}"
    error_message = "execution URL template not passed through"
  }
  assert {
    condition = [for p in aws_codepipeline_custom_action_type.this["Build/AcmeGpuBuild/1"].configuration_property : [p.name, p.queryable, p.secret, p.required]] == [
      ["Pool", true, false, true], ["Token", false, true, false],
    ]
    error_message = "configuration properties not passed through in order"
  }
  assert {
    condition     = aws_codepipeline_custom_action_type.this["Build/AcmeGpuBuild/1"].input_artifact_details[0].maximum_count == 2
    error_message = "input artifact counts not passed through"
  }
  assert {
    condition     = aws_codepipeline_custom_action_type.this["Build/AcmeGpuBuild/1"].tags == tomap({ team = "platform", cost-center = "ci" })
    error_message = "module tags and entry tags must be merged"
  }
  assert {
    condition     = output.action_type_ids["gpu"] == { category = "Build", owner = "Custom", provider = "AcmeGpuBuild", version = "1" }
    error_message = "action_type_ids must be shaped like the CRD's actionTypeId"
  }
  assert {
    condition     = output.queryable_properties["gpu"] == "Pool"
    error_message = "queryable property not reported"
  }
}

run "defaults_fill_artifacts_and_property_flags" {
  command = plan
  variables {
    action_types = {
      plain = { category = "Test", provider_name = "Plain", version = "v2" }
    }
  }
  assert {
    condition     = aws_codepipeline_custom_action_type.this["Test/Plain/v2"].input_artifact_details[0].minimum_count == 0 && aws_codepipeline_custom_action_type.this["Test/Plain/v2"].output_artifact_details[0].maximum_count == 5
    error_message = "artifact counts default to 0..5"
  }
  assert {
    condition     = length(aws_codepipeline_custom_action_type.this["Test/Plain/v2"].settings) == 0
    error_message = "no settings block when none given"
  }
  assert {
    condition     = output.queryable_properties["plain"] == null
    error_message = "no queryable property expected"
  }
}

run "create_false_creates_nothing" {
  command = plan
  variables {
    create = false
  }
  assert {
    condition     = length(aws_codepipeline_custom_action_type.this) == 0 && length(output.action_type_ids) == 0
    error_message = "create = false must plan nothing"
  }
}

run "rejects_unknown_category" {
  command = plan
  variables {
    action_types = { bad = { category = "Builds", provider_name = "X", version = "1" } }
  }
  expect_failures = [var.action_types]
}

run "rejects_provider_longer_than_35" {
  command = plan
  variables {
    action_types = { bad = { category = "Build", provider_name = "A123456789012345678901234567890123456", version = "1" } }
  }
  expect_failures = [var.action_types]
}

run "rejects_provider_with_bad_characters" {
  command = plan
  variables {
    action_types = { bad = { category = "Build", provider_name = "Acme.Build", version = "1" } }
  }
  expect_failures = [var.action_types]
}

run "rejects_version_longer_than_9" {
  command = plan
  variables {
    action_types = { bad = { category = "Build", provider_name = "Acme", version = "1234567890" } }
  }
  expect_failures = [var.action_types]
}

run "rejects_more_than_10_properties" {
  command = plan
  variables {
    action_types = {
      bad = {
        category                 = "Build", provider_name = "Acme", version = "1"
        configuration_properties = [for i in range(11) : { name = "P${i}" }]
      }
    }
  }
  expect_failures = [var.action_types]
}

run "rejects_two_queryable_properties" {
  command = plan
  variables {
    action_types = {
      bad = {
        category = "Build", provider_name = "Acme", version = "1"
        configuration_properties = [
          { name = "A", required = true, queryable = true },
          { name = "B", required = true, queryable = true },
        ]
      }
    }
  }
  expect_failures = [var.action_types]
}

run "rejects_secret_queryable_property" {
  command = plan
  variables {
    action_types = {
      bad = {
        category                 = "Build", provider_name = "Acme", version = "1"
        configuration_properties = [{ name = "A", required = true, queryable = true, secret = true }]
      }
    }
  }
  expect_failures = [var.action_types]
}

run "rejects_optional_queryable_property" {
  command = plan
  variables {
    action_types = {
      bad = {
        category                 = "Build", provider_name = "Acme", version = "1"
        configuration_properties = [{ name = "A", required = false, queryable = true }]
      }
    }
  }
  expect_failures = [var.action_types]
}

run "rejects_more_than_5_artifacts" {
  command = plan
  variables {
    action_types = { bad = { category = "Build", provider_name = "Acme", version = "1", output_artifacts = { maximum_count = 6 } } }
  }
  expect_failures = [var.action_types]
}

run "rejects_duplicate_identity" {
  command = plan
  variables {
    action_types = {
      a = { category = "Build", provider_name = "Acme", version = "1" }
      b = { category = "Build", provider_name = "Acme", version = "1" }
    }
  }
  expect_failures = [var.action_types]
}

# The immutability guard: apply (mocked), then edit the published definition.
run "publish" {
  command = apply
}

run "editing_a_published_definition_is_refused" {
  command = plan
  variables {
    action_types = {
      gpu = {
        category      = "Build"
        provider_name = "AcmeGpuBuild"
        version       = "1"
        settings = {
          execution_url_template = "https://ci.example.com/other/{ExternalExecutionId}"
        }
        configuration_properties = [
          { name = "Pool", required = true, queryable = true, description = "Worker pool" },
          { name = "Token", required = false, secret = true, key = false },
        ]
        input_artifacts  = { minimum_count = 1, maximum_count = 2 }
        output_artifacts = { minimum_count = 0, maximum_count = 1 }
        tags             = { cost-center = "ci" }
      }
    }
  }
  expect_failures = [check.definitions_are_immutable]
  assert {
    condition     = aws_codepipeline_custom_action_type.this["Build/AcmeGpuBuild/1"].settings[0].execution_url_template == "https://ci.example.com/jobs/{ExternalExecutionId}"
    error_message = "the edit must not reach the planned resource"
  }
}

run "changing_only_tags_is_an_in_place_update" {
  command = plan
  variables {
    tags = { team = "platform", stage = "prod" }
  }
  assert {
    condition     = aws_codepipeline_custom_action_type.this["Build/AcmeGpuBuild/1"].tags["stage"] == "prod"
    error_message = "tag change must be planned"
  }
}
