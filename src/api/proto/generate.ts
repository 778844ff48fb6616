// Writes tables.ts, the tables the API's protobuf codec (wire.ts) runs on, from the .proto files in
// src/api (the source of truth), read with @grpc/proto-loader as the control plane reads them.
// Regenerate after changing a .proto: `npm run gen:api`. generate.test.ts fails while tables.ts and the
// .proto files disagree. Refuses what wire.ts does not implement (other scalar types, maps, oneofs,
// proto3 `optional`), so that nothing is silently decoded wrong.
import { readdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protoLoader from '@grpc/proto-loader';
import { SCALARS, type FieldSpec, type MethodSpec } from './wire.js';

/** src/api, from either src/api/proto (tsx) or dist/src/api/proto (compiled). */
export const API_DIR = fileURLToPath(
  new URL(import.meta.url.includes('/dist/') ? '../../../../src/api/' : '../', import.meta.url),
);
export const TABLES_FILE = `${API_DIR}proto/tables.ts`;

interface FieldDescriptor {
  name: string;
  number: number;
  label: string;
  type: string;
  typeName: string;
  proto3Optional: boolean;
}

interface MessageDescriptor {
  name: string;
  field: FieldDescriptor[];
  nestedType: MessageDescriptor[];
  enumType: EnumDescriptor[];
  oneofDecl: unknown[];
  options: { mapEntry?: boolean } | null;
}

interface EnumDescriptor {
  name: string;
  value: { name: string; number: number }[];
}

const SCALAR_OF: Readonly<Record<string, string>> = Object.fromEntries(
  SCALARS.map((s) => [`TYPE_${s.toUpperCase()}`, s]),
);

/** The text of tables.ts for the .proto files now in src/api. */
export function generateTables(): string {
  const files = readdirSync(API_DIR)
    .filter((f) => f.endsWith('.proto'))
    .sort();
  const def = protoLoader.loadSync(files, { keepCase: true, includeDirs: [API_DIR] });

  const messages = new Map<string, MessageDescriptor>();
  const enums = new Map<string, EnumDescriptor>();
  const methods = new Map<string, MethodSpec>();
  const addMessage = (fullName: string, d: MessageDescriptor): void => {
    messages.set(fullName, d);
    for (const e of d.enumType) enums.set(`${fullName}.${e.name}`, e);
    for (const n of d.nestedType) addMessage(`${fullName}.${n.name}`, n);
  };
  for (const [name, entry] of Object.entries(def)) {
    if (!('format' in entry)) {
      for (const m of Object.values(entry as protoLoader.ServiceDefinition)) {
        const request = (m.requestType.type as unknown as MessageDescriptor).name;
        const response = (m.responseType.type as unknown as MessageDescriptor).name;
        methods.set(m.path, { request, response, requestStream: m.requestStream, responseStream: m.responseStream });
      }
    } else if (entry.format === 'Protocol Buffer 3 DescriptorProto') {
      // proto-loader lists nested messages on their own too; addMessage sees them again, which is harmless.
      addMessage(name, entry.type as unknown as MessageDescriptor);
    } else {
      enums.set(name, entry.type as unknown as EnumDescriptor);
    }
  }
  // Type names are relative to where they are used (protobuf's scoping: the innermost scope first).
  function resolveIn(scope: string, name: string): string {
    if (name.startsWith('.')) return name.slice(1);
    const parts = scope.split('.');
    for (let i = parts.length; i >= 0; i--) {
      const candidate = [...parts.slice(0, i), name].join('.');
      if (messages.has(candidate) || enums.has(candidate)) return candidate;
    }
    throw new Error(`${scope}: cannot resolve type ${name}`);
  }
  // A method's messages, as proto-loader names them, are relative to its service.
  for (const [path, m] of methods) {
    const service = path.slice(1, path.lastIndexOf('/'));
    methods.set(path, { ...m, request: resolveIn(service, m.request), response: resolveIn(service, m.response) });
  }

  const out: string[] = [
    '// Generated from src/api/*.proto by `npm run gen:api` (src/api/proto/generate.ts): do not edit.',
    '// src/api/proto/generate.test.ts fails while this file and the .proto files disagree.',
    "import type { ProtoTables } from './wire.js';",
    '',
    'export const TABLES: ProtoTables = {',
    '  messages: {',
  ];
  for (const [name, d] of messages) {
    if (d.options?.mapEntry === true) throw new Error(`${name}: map fields are not supported by src/api/proto/wire.ts`);
    if (d.oneofDecl.length > 0)
      throw new Error(`${name}: oneofs (and proto3 optional) are not supported by src/api/proto/wire.ts`);
    out.push(`    '${name}': [`);
    for (const f of d.field) {
      const where = `${name}.${f.name}`;
      if (f.proto3Optional) throw new Error(`${where}: proto3 optional is not supported by src/api/proto/wire.ts`);
      let type: string | undefined;
      if (f.type === 'TYPE_MESSAGE' || f.type === 'TYPE_ENUM') type = resolveIn(name, f.typeName);
      else type = SCALAR_OF[f.type];
      if (type === undefined)
        throw new Error(`${where}: ${f.type} is not supported by src/api/proto/wire.ts (add it there)`);
      const spec: FieldSpec =
        f.label === 'LABEL_REPEATED' ? [f.number, f.name, type, 'repeated'] : [f.number, f.name, type];
      out.push(`      [${spec.map((x) => (typeof x === 'number' ? String(x) : `'${x}'`)).join(', ')}],`);
    }
    out.push('    ],');
  }
  out.push('  },', '  enums: {');
  for (const [name, e] of enums) {
    out.push(`    '${name}': { ${e.value.map((v) => `${v.number}: '${v.name}'`).join(', ')} },`);
  }
  out.push('  },', '  methods: {');
  for (const [path, m] of methods) {
    out.push(
      `    '${path}': { request: '${m.request}', response: '${m.response}', requestStream: ${m.requestStream}, responseStream: ${m.responseStream} },`,
    );
  }
  out.push('  },', '};', '');
  return out.join('\n');
}

// `node dist/src/api/proto/generate.js` (npm run gen:api) writes the file.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(TABLES_FILE, generateTables());
  process.stdout.write(`wrote ${TABLES_FILE}\n`);
}
