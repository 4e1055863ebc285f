#!/usr/bin/env node
/**
 * The last step of `npm run build`. tsc emits one CommonJS file per module into dist/; this joins them into one,
 * dist/ipc-link-core.js, so that a process's `require('ipc-link-core')` finds, reads and compiles 2 of our files
 * instead of ~40 (~15 ms of a forked child's first reply: bench/startup.ts, bench/README.md).
 *
 * - Each module keeps tsc's code, line for line, inside a function that runs on its first `require`, in the
 *   order Node would have run it (a module is cached before it runs, as Node does for cycles). Its relative
 *   requires become calls of the bundle's loader with the module's id, resolved at build time.
 * - The entry dist/index.js (and dist/internal.js, for specs and scripts) becomes two lines that ask the bundle
 *   for its module (and list its export names for ESM `import`). The NATS transport (dist/nats/, see APART) stays
 *   in its own files, which require the other modules through the bundle: one copy of each class for both entries,
 *   so `instanceof` holds across `ipc-link-core` and `ipc-link-core/nats`, and NATS code loads only with
 *   `require('ipc-link-core/nats')`.
 * - Requires of other packages (`rxjs/internal/…`, `node:…`) stay calls of the real `require` with a literal,
 *   resolved from dist/ as before, and visible to a user's own bundler (esbuild, webpack).
 * - dist/ipc-link-core.js.map joins tsc's maps (each module's lines moved down to where the module now starts),
 *   so `node --enable-source-maps` still names src/*.ts lines. The per-module .js and .js.map files are removed;
 *   the declaration files (.d.ts) stay as tsc wrote them.
 *
 * `node scripts/bundle.js [distDir]`
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const DIST = path.resolve(process.argv[2] || path.join(__dirname, '..', 'dist'));
const BUNDLE = 'ipc-link-core.js';
const ENTRIES = ['index', 'internal'];
/**
 * Modules kept out of the bundle, as tsc wrote them: the NATS transport, which loads its client (an optional peer
 * dependency) by a name held in a variable. In the one file every app loads, that require made webpack warn
 * ("Critical dependency: the request of a dependency is an expression") for apps that never use NATS. Their
 * requires of the other modules go through the bundle.
 */
const APART = 'nats/';
/** The bundle's own require of a module by id (a name no module of ours declares: checked below). */
const LOAD = '__ipcLinkCoreLoad';

/** Every emitted module under `dir`, as ids relative to DIST without `.js` (`node/Node`), sorted. */
function moduleIds(dir) {
  const ids = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) ids.push(...moduleIds(file));
    else if (entry.name.endsWith('.js') && entry.name !== BUNDLE) ids.push(path.relative(DIST, file).slice(0, -3).split(path.sep).join('/'));
  }
  return ids.sort();
}

/** The joined source map: sources and names of every module, and each bundle line's segments, absolute. */
const joined = { sources: [], names: [], lines: [] };

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** The numbers of one mapping segment (base64 VLQ: 5 bits a digit, continuation bit 32, sign in the low bit). */
function decodeSegment(text) {
  const values = [];
  let value = 0;
  let shift = 0;
  for (const char of text) {
    const digit = BASE64.indexOf(char);
    value += (digit & 31) << shift;
    if (digit & 32) shift += 5;
    else {
      values.push(value & 1 ? -(value >>> 1) : value >>> 1);
      value = shift = 0;
    }
  }
  return values;
}

function encodeValue(number) {
  let value = number < 0 ? (-number << 1) | 1 : number << 1;
  let text = '';
  do {
    const digit = value & 31;
    value >>>= 5;
    text += BASE64[value > 0 ? digit | 32 : digit];
  } while (value > 0);
  return text;
}

/**
 * Adds tsc's source map of module `id` (if any) to `joined`, its first line at bundle line `offset`: each segment
 * made absolute ([column, source, line, column, name?]), its source made relative to DIST (it was relative to the
 * module's folder) and its indices moved to the joined lists. `shifts[line]`: where the rewritten requires of that
 * line end and how much longer they became.
 */
function addMap(mapFile, id, offset, shifts) {
  if (!fs.existsSync(mapFile)) return;
  const map = JSON.parse(fs.readFileSync(mapFile, 'utf8'));
  const sources = map.sources.map((source) => joinIndex(joined.sources, path.posix.normalize(path.posix.join(path.posix.dirname(id), map.sourceRoot || '', source))));
  const names = (map.names || []).map((name) => joinIndex(joined.names, name));
  const state = [0, 0, 0, 0, 0];
  map.mappings.split(';').forEach((line, index) => {
    state[0] = 0;
    const segments = [];
    for (const text of line.split(',')) {
      if (text === '') continue;
      const values = decodeSegment(text);
      values.forEach((value, i) => (state[i] += value));
      if (values.length === 1) continue; // a generated column mapped to nothing
      // Moved right or left by the rewritten requires that end before it on its line.
      const column = state[0] + (shifts[index] || []).reduce((sum, shift) => (state[0] >= shift.after ? sum + shift.by : sum), 0);
      const segment = [column, sources[state[1]], state[2], state[3]];
      if (values.length === 5) segment.push(names[state[4]]);
      segments.push(segment);
    }
    joined.lines[offset + index] = segments;
  });
}

function joinIndex(list, value) {
  const index = list.indexOf(value);
  return index >= 0 ? index : list.push(value) - 1;
}

/** `joined` as a version 3 source map of `lineCount` lines: its segments relative again, across the whole bundle. */
function encodeMap(lineCount) {
  const state = [0, 0, 0, 0, 0];
  const mappings = Array.from({ length: lineCount }, (_, index) => {
    state[0] = 0;
    return (joined.lines[index] || [])
      .map((segment) =>
        segment
          .map((value, i) => {
            const delta = value - state[i];
            state[i] = value;
            return encodeValue(delta);
          })
          .join(''),
      )
      .join(',');
  });
  return { version: 3, file: BUNDLE, sources: joined.sources, names: joined.names, mappings: mappings.join(';') };
}

/**
 * The file of entry `id`: its module, from the bundle. Its export names are written out too, in the one form that
 * Node's ESM loader reads from a CommonJS file without running it (cjs-module-lexer, as esbuild does): so
 * `import { Node } from 'ipc-link-core'` finds exactly these names.
 */
function entry(id) {
  const bundle = path.posix.relative(path.posix.dirname(id), BUNDLE);
  const names = Object.keys(require(path.join(DIST, BUNDLE))(id)).filter((name) => name !== '__esModule');
  const odd = names.filter((name) => name === 'default' || !/^[A-Za-z_$][\w$]*$/.test(name));
  if (odd.length > 0) throw new Error(`bundle: ${id} exports ${odd.join(', ')}, which the ESM names line cannot list`);
  return [
    "'use strict';",
    `const load = require(${JSON.stringify(bundle.startsWith('.') ? bundle : `./${bundle}`)});`,
    `module.exports = load(${JSON.stringify(id)});`,
    '// For `import { … } from` this file: never runs.',
    `0 && (module.exports = { ${names.join(', ')} });`,
    '',
  ].join('\n');
}

/**
 * `code` of module `id` with its relative requires rewritten by `replace(target id)` (undefined: left as it is),
 * and where each line's rewritten calls end and how much longer they became (for the source map).
 */
function rewriteRequires(id, code, ids, replace) {
  const shifts = [];
  const lines = code.split('\n').map((line, index) =>
    // Either quote, and '.' or '..' alone too: tsc writes double quotes for imports but keeps a hand-written
    // require's own (a lazy `require('./x')`), and one left as it was would fail at run time, its file removed.
    line.replace(/\brequire\((["'])(\.{1,2}(?:\/[^"']*)?)\1\)/g, (call, quote, spec, column) => {
      const target = path.posix.join(path.posix.dirname(id), spec);
      const folder = path.posix.join(target, 'index');
      const resolved = ids.includes(target) ? target : ids.includes(folder) ? folder : undefined;
      if (resolved === undefined) throw new Error(`bundle: ${id}.js requires ${spec}, which is not in dist/`);
      const replacement = replace(resolved) ?? call;
      (shifts[index] ??= []).push({ after: column + call.length, by: replacement.length - call.length });
      return replacement;
    }),
  );
  return { lines, shifts };
}

function main() {
  if (fs.existsSync(path.join(DIST, BUNDLE))) throw new Error(`bundle: dist/ is bundled already: run npm run build (it empties dist/ first)`);
  const ids = moduleIds(DIST);
  for (const id of ids) if (fs.readFileSync(path.join(DIST, `${id}.js`), 'utf8').includes(LOAD)) throw new Error(`bundle: ${id}.js uses the name ${LOAD}`);
  for (const entry of ENTRIES) if (!ids.includes(entry)) throw new Error(`bundle: dist/${entry}.js is missing: run tsc first`);
  const bundled = ids.filter((id) => !id.startsWith(APART));

  const lines = [
    "'use strict';",
    '/* ipc-link-core: the modules of dist/ in one file (scripts/bundle.js). Each runs on its first require. */',
    'const modules = Object.create(null);',
    'const cache = Object.create(null);',
    `function ${LOAD}(id) {`,
    '  if (id in cache) return cache[id].exports;',
    '  const module = (cache[id] = { exports: {} });',
    '  try {',
    '    modules[id].call(module.exports, module.exports, module);',
    '  } catch (error) {',
    '    delete cache[id];',
    '    throw error;',
    '  }',
    '  return module.exports;',
    '}',
    `module.exports = ${LOAD};`,
  ];
  for (const id of bundled) {
    const file = path.join(DIST, `${id}.js`);
    const code = fs.readFileSync(file, 'utf8').replace(/\n\/\/# sourceMappingURL=.*\s*$/, '');
    // A relative require becomes a call of LOAD with the module's id; every other require stays as tsc wrote it.
    const body = rewriteRequires(id, code, ids, (target) => {
      if (target.startsWith(APART)) throw new Error(`bundle: ${id}.js requires ${target}, which stays out of the bundle`);
      return `${LOAD}(${JSON.stringify(target)})`;
    });
    lines.push(`modules[${JSON.stringify(id)}] = function (exports, module) {`);
    addMap(`${file}.map`, id, lines.length, body.shifts);
    lines.push(...body.lines, '};');
  }
  lines.push(`//# sourceMappingURL=${BUNDLE}.map`, '');
  fs.writeFileSync(path.join(DIST, BUNDLE), lines.join('\n'));
  fs.writeFileSync(path.join(DIST, `${BUNDLE}.map`), JSON.stringify(encodeMap(lines.length)));

  for (const id of ids.filter((id) => id.startsWith(APART))) {
    // Its own file still (lines unchanged: tsc's map still holds), a require of a bundled module through the bundle.
    const file = path.join(DIST, `${id}.js`);
    const bundle = path.posix.relative(path.posix.dirname(id), BUNDLE);
    const rewritten = rewriteRequires(id, fs.readFileSync(file, 'utf8'), ids, (target) =>
      target.startsWith(APART) ? undefined : `require(${JSON.stringify(bundle)})(${JSON.stringify(target)})`,
    );
    fs.writeFileSync(file, rewritten.lines.join('\n'));
  }
  for (const id of bundled) {
    const file = path.join(DIST, `${id}.js`);
    fs.rmSync(`${file}.map`, { force: true });
    if (!ENTRIES.includes(id)) fs.rmSync(file);
  }
  for (const id of ENTRIES) fs.writeFileSync(path.join(DIST, `${id}.js`), entry(id));
  console.log(`bundle: ${bundled.length} modules → dist/${BUNDLE} (${fs.statSync(path.join(DIST, BUNDLE)).size} bytes); ${ids.length - bundled.length} apart (${APART})`);
}

main();
