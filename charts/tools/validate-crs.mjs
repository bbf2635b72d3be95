// Validates Prometheus operator resources against the operator's schemas, offline.
//
//   node validate-crs.mjs < resources.json
//
// stdin: a JSON array of monitoring.coreos.com/v1 objects. stdout: one JSON line per
// object, {"kind", "name", "error"} (error null when valid). Exit 1 if any is invalid
// or of a kind this script has no schema for. The schemas come with
// @kubernetes-models/prometheus-operator (generated from the operator's API types, the
// same types its CRDs are generated from); like the CRDs, they accept unknown fields.
import { readFileSync } from "node:fs";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const MODELS = { PodMonitor, PrometheusRule, ServiceMonitor };

let failed = false;
for (const resource of JSON.parse(readFileSync(0, "utf8"))) {
  const kind = resource?.kind;
  const name = resource?.metadata?.name ?? null;
  let error = null;
  const Model = MODELS[kind];
  if (resource?.apiVersion !== "monitoring.coreos.com/v1" || Model === undefined) {
    error = `no schema for ${resource?.apiVersion} ${kind}`;
  } else {
    try {
      new Model(resource).validate();
    } catch (exc) {
      error = String(exc?.message ?? exc);
    }
  }
  failed ||= error !== null;
  console.log(JSON.stringify({ kind, name, error }));
}
process.exit(failed ? 1 : 0);
