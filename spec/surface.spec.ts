import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ts from 'typescript';

/**
 * The published surface, checked on the build (`npm test` builds first): what `dist/` exports and declares is
 * what the README documents, `@internal` declarations never reach the typings, and the typings compile for a
 * consumer that imports 'ipc-link-core'.
 */
const ROOT = join(__dirname, '..');
const DIST = join(ROOT, 'dist');

function declarationFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return declarationFiles(path);
    return entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** The text of the README's code: fenced blocks and `inline` spans. */
function readmeCode(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const fenced = readme.match(/^```[\s\S]*?^```/gm) ?? [];
  const inline = readme.replace(/^```[\s\S]*?^```/gm, '').match(/`[^`]+`/g) ?? [];
  return [...fenced, ...inline].join('\n');
}

function mentions(text: string, name: string): boolean {
  const escaped = name.replace(/[$]/g, '\\$');
  return new RegExp(`(^|[^\\w$])${escaped}(?![\\w$])`).test(text);
}

describe('public surface (dist)', () => {
  it('is built: dist/index.d.ts and dist/index.js exist (run `npm run build`)', () => {
    expect(existsSync(join(DIST, 'index.d.ts'))).toBe(true);
    expect(existsSync(join(DIST, 'index.js'))).toBe(true);
  });

  it('carries no @internal declaration in any .d.ts (stripInternal is on)', () => {
    const files = declarationFiles(DIST);
    expect(files).toContain(join(DIST, 'index.d.ts'));
    const leaks = files.flatMap((file) =>
      readFileSync(file, 'utf8')
        .split('\n')
        .flatMap((line, i) => (line.includes('@internal') ? [`${file.slice(ROOT.length + 1)}:${i + 1}: ${line.trim()}`] : [])),
    );
    expect(leaks).toEqual([]);
  });

  it('exports only values the README shows in its code (and every one of them)', () => {
    const exported = Object.keys(require(join(DIST, 'index.js')) as object);
    expect(exported).toEqual(expect.arrayContaining(['Node', 'createLinkPair', 'FrameDecoder', 'IpcError']));
    const code = readmeCode();
    expect(exported.filter((name) => !mentions(code, name))).toEqual([]);
  });

  it('keeps the internals out of it: nothing is exported by both dist/index.js and dist/internal.js', () => {
    const internal = Object.keys(require(join(DIST, 'internal.js')) as object);
    expect(internal).toEqual(expect.arrayContaining(['RequestRegistry', 'request$', 'Handshake']));
    const exported = new Set(Object.keys(require(join(DIST, 'index.js')) as object));
    expect(internal.filter((name) => exported.has(name))).toEqual([]);
  });

  it('type-checks for a consumer of the built package (spec/consumer: consumer.ts, and types.review.ts whose @ts-expect-error lines must stay refused; declarations checked)', () => {
    const configPath = join(__dirname, 'consumer', 'tsconfig.json');
    const parsed = ts.getParsedCommandLineOfConfigFile(configPath, {}, {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
        throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
      },
    })!;
    expect(parsed.options.skipLibCheck).toBe(false);
    const program = ts.createProgram(parsed.fileNames, parsed.options);
    // The consumer must see the typings of dist, not the sources.
    expect(program.getSourceFile(join(DIST, 'index.d.ts'))).toBeDefined();
    // Our files only (the consumer and every dist declaration it reaches): checking all of @types/node and
    // rxjs as well would triple the time and test nothing of ours.
    const ours = program.getSourceFiles().filter((file) => !file.fileName.includes('/node_modules/'));
    expect(ours.map((file) => file.fileName)).toContain(join(DIST, 'node', 'Node.d.ts'));
    const found = [
      ...program.getOptionsDiagnostics(),
      ...program.getGlobalDiagnostics(),
      ...ours.flatMap((file) => [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)]),
    ];
    const diagnostics = found.map((diagnostic) => {
      const where = diagnostic.file ? `${diagnostic.file.fileName.slice(ROOT.length + 1)}:${diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start ?? 0).line + 1}: ` : '';
      return where + ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n');
    });
    expect(diagnostics).toEqual([]);
  }, 60_000);
});
