// Schema check of rendered Kubernetes objects, offline: node schema_check.mjs RENDERED.yaml...
// Built-in kinds: the `kubernetes-models` package's validators (the Kubernetes OpenAPI schema);
// ServiceMonitor: `@kubernetes-models/prometheus-operator`; Flagger's Canary and MetricTemplate:
// ajv against the openAPIV3Schema of their CRDs (schemas/flagger-crd-*.yaml), made strict the way
// the API server's field validation is (an unknown field is an error). Any other kind fails: every
// object the kit renders must be checked by something.
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Ajv from "ajv";
import yaml from "js-yaml";

const here = dirname(fileURLToPath(import.meta.url));

// Kinds defined by CRDs whose schema is kept in schemas/: "group/version/Kind" -> ajv validator.
const crdValidators = new Map();
function strict(schema) {
  // An object with declared properties and no x-kubernetes-preserve-unknown-fields takes no other
  // field, as the API server prunes or (kubectl's default --validate=strict) refuses them.
  if (Array.isArray(schema)) return schema.map(strict);
  if (schema === null || typeof schema !== "object") return schema;
  const out = {};
  for (const [k, v] of Object.entries(schema)) out[k] = strict(v);
  if (out.properties && out.additionalProperties === undefined && !out["x-kubernetes-preserve-unknown-fields"])
    out.additionalProperties = false;
  return out;
}
const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
for (const file of readdirSync(join(here, "schemas")).filter((f) => /\.ya?ml$/.test(f))) {
  for (const crd of yaml.loadAll(readFileSync(join(here, "schemas", file), "utf8"))) {
    if (!crd || crd.kind !== "CustomResourceDefinition") continue;
    for (const version of crd.spec.versions) {
      const schema = strict(version.schema.openAPIV3Schema);
      // apiVersion, kind and metadata are the API server's, not the CRD's, to check.
      schema.properties.apiVersion = { type: "string" };
      schema.properties.kind = { type: "string" };
      schema.properties.metadata = { type: "object" };
      if (schema.properties.status) delete schema.properties.status;
      crdValidators.set(`${crd.spec.group}/${version.name}/${crd.spec.names.kind}`, ajv.compile(schema));
    }
  }
}

// Packages whose models are "<package>/<group>/<version>/<Kind>" ("v1/Service" for the core group).
const modelPackages = {
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};
async function builtinModel(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const pkg = modelPackages[group] ?? "kubernetes-models";
  const path = group ? `${pkg}/${group}/${version}/${kind}` : `${pkg}/${version}/${kind}`;
  try {
    const module = await import(path);
    return module[kind] ?? null;
  } catch (e) {
    if (e.code === "ERR_MODULE_NOT_FOUND" || e.code === "ERR_PACKAGE_PATH_NOT_EXPORTED") return null;
    throw e;
  }
}

let failures = 0;
let checked = 0;
for (const file of process.argv.slice(2)) {
  const docs = yaml.loadAll(readFileSync(file, "utf8")).filter((d) => d);
  if (docs.length === 0) {
    console.error(`FAIL ${file}: no object rendered`);
    failures++;
  }
  for (const obj of docs) {
    const what = `${file}: ${obj.kind ?? "?"} ${obj.metadata?.name ?? "?"}`;
    if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") {
      console.error(`FAIL ${what}: no apiVersion or kind`);
      failures++;
      continue;
    }
    const crd = crdValidators.get(`${obj.apiVersion}/${obj.kind}`);
    let errors = null;
    if (crd) {
      if (!crd(obj)) errors = crd.errors.map((e) => `${e.instancePath || "/"} ${e.message}` +
        (e.params?.additionalProperty ? `: "${e.params.additionalProperty}"` : ""));
    } else {
      const Model = await builtinModel(obj.apiVersion, obj.kind);
      if (!Model) {
        console.error(`FAIL ${what}: no schema for ${obj.apiVersion} ${obj.kind} (not a kind of ` +
          `kubernetes-models, @kubernetes-models/prometheus-operator or tests/deploy/schemas/)`);
        failures++;
        continue;
      }
      try {
        new Model(obj).validate();
      } catch (e) {
        errors = [e.message];
      }
    }
    checked++;
    if (errors) {
      console.error(`FAIL ${what} (${obj.apiVersion}) does not match its schema:\n  ${errors.join("\n  ")}`);
      failures++;
    }
  }
}
console.log(`schema check: ${checked} objects checked, ${failures} failed`);
process.exit(failures ? 1 : 0);
