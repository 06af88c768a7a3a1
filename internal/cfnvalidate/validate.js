'use strict';
// Validates CloudFormation templates (JSON) against the AWS CDK's service
// spec database, @aws-cdk/aws-service-spec, which is generated from the
// CloudFormation registry schemas: every resource type exists; every
// property, at every depth, is one the type has, of the type's type
// (string, integer, number, boolean, JSON, list, map, a nested type, a
// tag) and among its allowed values where the spec lists them; every
// required property is there; every Ref, Fn::GetAtt and Fn::Sub names a
// resource the template declares (or a pseudo parameter) and an
// attribute that resource type has; DependsOn names resources; and the
// resources do not depend on each other in a circle.
//
// usage: node validate.js TEMPLATE.json...   (exit 0: valid; 1: problems,
// one per line, "file: path: problem"; 2: usage)
const fs = require('node:fs');
const { loadAwsServiceSpecSync } = require('@aws-cdk/aws-service-spec');

const db = loadAwsServiceSpecSync();

const TOP = new Set(['AWSTemplateFormatVersion', 'Description', 'Metadata', 'Parameters', 'Mappings', 'Conditions', 'Transform', 'Resources', 'Outputs', 'Rules']);
const RESOURCE_KEYS = new Set(['Type', 'Properties', 'DependsOn', 'Condition', 'Metadata', 'DeletionPolicy', 'UpdateReplacePolicy', 'UpdatePolicy', 'CreationPolicy']);
const POLICIES = new Set(['Delete', 'Retain', 'RetainExceptOnCreate', 'Snapshot']);
const PSEUDO = new Set(['AWS::AccountId', 'AWS::NotificationARNs', 'AWS::NoValue', 'AWS::Partition', 'AWS::Region', 'AWS::StackId', 'AWS::StackName', 'AWS::URLSuffix']);
const INTRINSICS = new Set(['Ref', 'Condition', 'Fn::Base64', 'Fn::Cidr', 'Fn::FindInMap', 'Fn::GetAtt', 'Fn::GetAZs', 'Fn::ImportValue', 'Fn::Join', 'Fn::Select', 'Fn::Split', 'Fn::Sub', 'Fn::Transform', 'Fn::If', 'Fn::Equals', 'Fn::And', 'Fn::Or', 'Fn::Not', 'Fn::Length', 'Fn::ToJsonString']);

function lookupResource(type) {
  const found = db.lookup('resource', 'cloudFormationType', 'equals', type);
  return found.length === 1 ? found[0] : undefined;
}

function isIntrinsic(v) {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const keys = Object.keys(v);
  return keys.length === 1 && (keys[0] === 'Ref' || keys[0] === 'Condition' || keys[0].startsWith('Fn::'));
}

function validateTemplate(tpl) {
  const problems = [];
  const bad = (path, msg) => problems.push(`${path}: ${msg}`);
  if (tpl === null || typeof tpl !== 'object' || Array.isArray(tpl)) {
    bad('$', 'a template is a JSON object');
    return problems;
  }
  for (const k of Object.keys(tpl)) if (!TOP.has(k)) bad(k, 'not a template section');
  if (tpl.AWSTemplateFormatVersion !== undefined && tpl.AWSTemplateFormatVersion !== '2010-09-09') {
    bad('AWSTemplateFormatVersion', `${JSON.stringify(tpl.AWSTemplateFormatVersion)} is not 2010-09-09`);
  }
  const resources = tpl.Resources || {};
  const params = tpl.Parameters || {};
  if (Object.keys(resources).length === 0) bad('Resources', 'no resources');
  const specs = {};
  for (const [id, r] of Object.entries(resources)) {
    if (!/^[A-Za-z0-9]+$/.test(id)) bad(`Resources.${id}`, 'a logical id is letters and digits');
    const spec = lookupResource(r.Type);
    if (!spec) bad(`Resources.${id}.Type`, `unknown resource type ${JSON.stringify(r.Type)}`);
    specs[id] = spec;
  }
  const deps = {};
  // intrinsic checks an intrinsic function's use; from is the resource it
  // is in (for the dependency graph), or undefined.
  const intrinsic = (path, v, from) => {
    const [k] = Object.keys(v);
    const arg = v[k];
    const dep = (id) => { if (from) (deps[from] = deps[from] || new Set()).add(id); };
    const refName = (name, p) => {
      if (PSEUDO.has(name) || name in params) return;
      if (name in resources) { dep(name); return; }
      bad(p, `names ${JSON.stringify(name)}, which is neither a resource, a parameter nor a pseudo parameter`);
    };
    const getAtt = (id, attr, p) => {
      if (!(id in resources)) { bad(p, `names resource ${JSON.stringify(id)}, which the template does not declare`); return; }
      dep(id);
      const spec = specs[id];
      if (spec && !(attr in spec.attributes)) bad(p, `${resources[id].Type} has no attribute ${JSON.stringify(attr)} (it has ${Object.keys(spec.attributes).join(', ')})`);
    };
    if (!INTRINSICS.has(k)) { bad(path, `unknown intrinsic function ${k}`); return; }
    switch (k) {
      case 'Ref':
        if (typeof arg !== 'string') bad(`${path}.Ref`, 'takes a name');
        else refName(arg, `${path}.Ref`);
        return;
      case 'Fn::GetAtt': {
        let id, attr;
        if (typeof arg === 'string') [id, attr] = [arg.slice(0, arg.indexOf('.')), arg.slice(arg.indexOf('.') + 1)];
        else if (Array.isArray(arg) && arg.length === 2 && typeof arg[0] === 'string' && typeof arg[1] === 'string') [id, attr] = arg;
        else { bad(`${path}.Fn::GetAtt`, 'takes [resource, attribute]'); return; }
        getAtt(id, attr, `${path}.Fn::GetAtt`);
        return;
      }
      case 'Fn::Sub': {
        const [str, vars] = Array.isArray(arg) ? arg : [arg, {}];
        if (typeof str !== 'string') { bad(`${path}.Fn::Sub`, 'takes a string'); return; }
        for (const m of str.matchAll(/\$\{([^}]*)\}/g)) {
          const name = m[1];
          if (name.startsWith('!')) continue;
          if (vars && name in vars) continue;
          const dot = name.indexOf('.');
          if (dot > 0 && !PSEUDO.has(name)) getAtt(name.slice(0, dot), name.slice(dot + 1), `${path}.Fn::Sub`);
          else refName(name, `${path}.Fn::Sub`);
        }
        if (vars) for (const [n, x] of Object.entries(vars)) walkValue(`${path}.Fn::Sub.${n}`, x, from);
        return;
      }
      case 'Fn::Join':
        if (!Array.isArray(arg) || arg.length !== 2 || typeof arg[0] !== 'string' || !(Array.isArray(arg[1]) || isIntrinsic(arg[1]))) {
          bad(`${path}.Fn::Join`, 'takes [delimiter, list]');
          return;
        }
        walkValue(`${path}.Fn::Join`, arg[1], from);
        return;
      case 'Fn::Select':
        if (!Array.isArray(arg) || arg.length !== 2) { bad(`${path}.Fn::Select`, 'takes [index, list]'); return; }
        walkValue(`${path}.Fn::Select`, arg[1], from);
        return;
      case 'Fn::Split':
        if (!Array.isArray(arg) || arg.length !== 2 || typeof arg[0] !== 'string') { bad(`${path}.Fn::Split`, 'takes [delimiter, string]'); return; }
        walkValue(`${path}.Fn::Split`, arg[1], from);
        return;
      default:
        walkValue(`${path}.${k}`, arg, from);
    }
  };
  // walkValue checks the intrinsic functions anywhere in v (free-form
  // JSON, such as a policy document).
  const walkValue = (path, v, from) => {
    if (isIntrinsic(v)) { intrinsic(path, v, from); return; }
    if (Array.isArray(v)) v.forEach((x, i) => walkValue(`${path}[${i}]`, x, from));
    else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) walkValue(`${path}.${k}`, x, from);
  };
  // checkType checks v against a spec type; it returns false (adding
  // nothing) when v does not fit a union's member, when quiet.
  const checkType = (path, v, t, from, out) => {
    if (isIntrinsic(v)) { intrinsic(path, v, from); return true; }
    const fail = (msg) => { out.push(`${path}: ${msg}`); return false; };
    switch (t.type) {
      case 'string':
        if (typeof v !== 'string') return fail(`${JSON.stringify(v)} is not a string`);
        if (t.allowedValues && !t.allowedValues.includes(v)) return fail(`${JSON.stringify(v)} is not one of ${t.allowedValues.join(', ')}`);
        return true;
      case 'date-time':
        return typeof v === 'string' || fail(`${JSON.stringify(v)} is not a date-time string`);
      case 'integer':
        if (!Number.isInteger(v)) return fail(`${JSON.stringify(v)} is not an integer`);
        if (t.allowedValues && !t.allowedValues.includes(v)) return fail(`${v} is not one of ${t.allowedValues.join(', ')}`);
        return true;
      case 'number':
        return typeof v === 'number' || fail(`${JSON.stringify(v)} is not a number`);
      case 'boolean':
        return typeof v === 'boolean' || fail(`${JSON.stringify(v)} is not a boolean`);
      case 'null':
        return v === null || fail('is not null');
      case 'json':
        if (v === null || typeof v !== 'object') return fail('is not a JSON object');
        walkValue(path, v, from);
        return true;
      case 'tag':
        if (v === null || typeof v !== 'object' || Array.isArray(v)) return fail('is not a tag');
        for (const k of Object.keys(v)) if (k !== 'Key' && k !== 'Value') out.push(`${path}.${k}: a tag has Key and Value only`);
        for (const k of ['Key', 'Value']) checkType(`${path}.${k}`, v[k], { type: 'string' }, from, out);
        return true;
      case 'array':
        if (!Array.isArray(v)) return fail('is not a list');
        v.forEach((x, i) => checkType(`${path}[${i}]`, x, t.element, from, out));
        return true;
      case 'map':
        if (v === null || typeof v !== 'object' || Array.isArray(v)) return fail('is not a map');
        for (const [k, x] of Object.entries(v)) checkType(`${path}.${k}`, x, t.element, from, out);
        return true;
      case 'ref': {
        if (v === null || typeof v !== 'object' || Array.isArray(v)) return fail('is not an object');
        const def = db.get('typeDefinition', t.reference.$ref);
        checkProps(path, v, def.properties, from, out, def.name);
        return true;
      }
      case 'union': {
        for (const member of t.types) {
          const trial = [];
          const savedProblems = problems.length;
          if (checkType(path, v, member, from, trial) && trial.length === 0) return true;
          problems.length = savedProblems;
        }
        return fail(`${JSON.stringify(v).slice(0, 60)} fits none of ${t.types.map((x) => x.type).join(', ')}`);
      }
    }
    return fail(`unknown spec type ${t.type}`);
  };
  const checkProps = (path, obj, props, from, out, what) => {
    for (const [k, v] of Object.entries(obj)) {
      const p = props[k];
      if (!p) { out.push(`${path}.${k}: ${what} has no property ${k}`); continue; }
      checkType(`${path}.${k}`, v, p.type, from, out);
    }
    for (const [k, p] of Object.entries(props)) {
      if (p.required && !(k in obj)) out.push(`${path}: required property ${k} of ${what} is missing`);
    }
  };
  for (const [id, r] of Object.entries(resources)) {
    const path = `Resources.${id}`;
    for (const k of Object.keys(r)) if (!RESOURCE_KEYS.has(k)) bad(`${path}.${k}`, 'not a resource attribute');
    for (const k of ['DeletionPolicy', 'UpdateReplacePolicy']) {
      if (r[k] !== undefined && !POLICIES.has(r[k])) bad(`${path}.${k}`, `${JSON.stringify(r[k])} is not one of ${[...POLICIES].join(', ')}`);
    }
    for (const d of [].concat(r.DependsOn || [])) {
      if (!(d in resources)) bad(`${path}.DependsOn`, `names ${JSON.stringify(d)}, which the template does not declare`);
      else (deps[id] = deps[id] || new Set()).add(d);
    }
    const spec = specs[id];
    if (!spec) continue;
    const out = [];
    checkProps(`${path}.Properties`, r.Properties || {}, spec.properties, id, out, r.Type);
    problems.push(...out);
  }
  for (const [name, o] of Object.entries(tpl.Outputs || {})) {
    if (!('Value' in o)) bad(`Outputs.${name}`, 'no Value');
    for (const k of Object.keys(o)) if (!['Value', 'Description', 'Export', 'Condition'].includes(k)) bad(`Outputs.${name}.${k}`, 'not an output key');
    walkValue(`Outputs.${name}.Value`, o.Value, undefined);
  }
  // Circular dependencies, which CloudFormation refuses.
  const state = {};
  const visit = (id, stack) => {
    if (state[id] === 'done') return;
    if (state[id] === 'open') { bad('Resources', `circular dependency: ${[...stack, id].join(' -> ')}`); return; }
    state[id] = 'open';
    for (const d of deps[id] || []) visit(d, [...stack, id]);
    state[id] = 'done';
  };
  Object.keys(resources).forEach((id) => visit(id, []));
  return problems;
}

module.exports = { validateTemplate };

if (require.main === module) {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error('usage: node validate.js TEMPLATE.json...');
    process.exit(2);
  }
  let failed = false;
  for (const f of files) {
    let tpl;
    try {
      tpl = JSON.parse(fs.readFileSync(f, 'utf8'));
    } catch (e) {
      console.log(`${f}: not JSON: ${e.message}`);
      failed = true;
      continue;
    }
    const problems = validateTemplate(tpl);
    for (const p of problems) console.log(`${f}: ${p}`);
    if (problems.length > 0) failed = true;
    else console.log(`${f}: valid (${Object.keys(tpl.Resources).length} resources)`);
  }
  process.exit(failed ? 1 : 0);
}
