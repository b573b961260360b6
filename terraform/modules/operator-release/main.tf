# The values and manifests are computed by a provider-free submodule, so they can be
# tested (and checked against the chart) without a cluster. This module only applies them.
module "render" {
  source = "./modules/render"

  image                       = var.image
  replica_count               = var.replica_count
  watch_namespaces            = var.watch_namespaces
  worker_selector             = var.worker_selector
  peering_name                = var.peering_name
  aws_region                  = var.aws_region
  events_queue_url            = var.events_queue_url
  events_queue_region         = var.events_queue_region
  log_format                  = var.log_format
  log_level                   = var.log_level
  extra_env                   = var.extra_env
  service_account_name        = var.service_account_name
  create_service_account      = var.create_service_account
  service_account_annotations = var.service_account_annotations
  crds                        = var.crds
  workers                     = var.workers
}

resource "helm_release" "this" {
  count = var.create ? 1 : 0

  name             = var.release_name
  namespace        = var.namespace
  create_namespace = var.create_namespace
  chart            = var.chart != null ? var.chart : "${path.module}/../../../helm/cpworker"
  repository       = var.repository
  version          = var.chart_version
  values           = concat([yamlencode(module.render.chart_values)], var.extra_values)

  atomic          = true
  cleanup_on_fail = true
  wait            = true
  timeout         = var.timeout
}

resource "kubernetes_manifest" "worker" {
  for_each = var.create ? module.render.worker_manifests : {}

  manifest = each.value

  # The CRD comes with the release; its operator must be running before workers report.
  depends_on = [helm_release.this]
}
