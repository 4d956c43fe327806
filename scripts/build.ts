// Builds dist/berkeley-agent.mjs: the CLI and everything it imports, bundled by esbuild into one
// ES module that plain `node` runs. bin/berkeley-agent runs it when it exists and no file in src/
// is newer, and falls back to the TypeScript sources through tsx otherwise (a checkout without a
// build, as the tests run, or one edited since the build). The
// bundle does not load tsx, whose loader hooks run on a second thread with its own V8 isolate and
// transpile every file at start. Measured with scripts/bench/footprint.ts (9 agents on loopback,
// 8 peers each, 1 s poll): mean RSS of a member 108 -> 79 MB, of the master 147 -> 93 MB.
//
//   npx tsx scripts/build.ts [--check]       (npm runs it as "prepack", so `npm pack` ships it)
//
// What stays outside the bundle, loaded from node_modules at run time:
//   - koffi: a native addon (its .node file is chosen per platform at run time);
//   - every other runtime dependency as well (pino, msgpackr, yargs, zod, ...): node loads them as
//     they are, so pino keeps its own file layout, msgpackr keeps its optional require of
//     msgpackr-extract (the override's stub in this tree, the registry's package when installed),
//     and the bundle holds only our code (~300 KB). (Bundling them too was not tried: node loads
//     them without a transpiler already.)
// Files the sources read at run time relative to themselves (`new URL('..', import.meta.url)`:
// package.json, the dashboard's page, the systemd unit) are re-pointed at build time from dist/ to
// the same files, which the package ships beside it; src/ is not changed.
//
// --check: build into a temporary directory and report, without touching dist/ (for CI).
// Reports on stderr: npm runs this inside `npm pack --json`, whose stdout must stay JSON.
import { build, type Plugin } from 'esbuild';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));
const ENTRY = path.join(REPO_ROOT, 'src/cli/main.ts');
const OUT_NAME = 'berkeley-agent.mjs';

/** `new URL('<relative>', import.meta.url)` with a literal path. */
const URL_OF_META = /new URL\(\s*(['"])([^'"]+)\1\s*,\s*import\.meta\.url\s*\)/g;

/**
 * Rewrites each `new URL('<relative>', import.meta.url)` in our sources so that, evaluated in the
 * bundle (whose import.meta.url is dist/berkeley-agent.mjs), it names the same file as in the
 * source. Fails the build on an `import.meta` use it does not understand, so a new one is not
 * silently broken in the bundle.
 */
function rebaseImportMetaUrls(outDir: string, rebased: string[]): Plugin {
  return {
    name: 'rebase-import-meta-url',
    setup(builder) {
      builder.onLoad({ filter: /\/src\/.*\.ts$/ }, (args) => {
        const source = readFileSync(args.path, 'utf8');
        if (!source.includes('import.meta')) return { contents: source, loader: 'ts' };
        const contents = source.replace(URL_OF_META, (_match, quote: string, relative: string) => {
          const target = path.resolve(path.dirname(args.path), relative);
          let fromOut = path.relative(outDir, target).split(path.sep).join('/');
          if (!fromOut.startsWith('.')) fromOut = `./${fromOut}`;
          if (relative.endsWith('/')) fromOut += '/';
          rebased.push(`${path.relative(REPO_ROOT, args.path)}: '${relative}' -> '${fromOut}'`);
          return `new URL(${quote}${fromOut}${quote}, import.meta.url)`;
        });
        // What is left must be createRequire(import.meta.url), which resolves packages from dist/
        // as well as from src/ (both look in the package's node_modules).
        const unknown = contents.split('\n').filter((line) => line.includes('import.meta') && !/^\s*(\/\/|\*)/.test(line)
          && !/createRequire\(import\.meta\.url\)/.test(line) && !/new URL\(['"][^'"]+['"], import\.meta\.url\)/.test(line));
        if (unknown.length > 0) {
          return { errors: [{ text: `import.meta use the bundle cannot rebase in ${args.path}: ${unknown.map((line) => line.trim()).join(' | ')}` }] };
        }
        return { contents, loader: 'ts' };
      });
    },
  };
}

export interface BuildResult {
  outFile: string;
  bytes: number;
  rebased: string[];
}

/** `layoutDir`: where the bundle will be run from (the URLs are rebased for it); dist/ by default. */
export async function buildBundle(outDir: string, layoutDir: string = outDir): Promise<BuildResult> {
  const outFile = path.join(outDir, OUT_NAME);
  const rebased: string[] = [];
  const result = await build({
    entryPoints: [ENTRY],
    outfile: outFile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20.19',
    // All of package.json's dependencies (koffi must be: a native addon).
    packages: 'external',
    sourcemap: false,
    minify: false,
    legalComments: 'none',
    logLevel: 'warning',
    banner: { js: '// berkeley-agent, bundled from src/ by scripts/build.ts (do not edit).' },
    plugins: [rebaseImportMetaUrls(layoutDir, rebased)],
  });
  if (result.errors.length > 0) throw new Error(`esbuild: ${result.errors.map((error) => error.text).join('; ')}`);
  return { outFile, bytes: statSync(outFile).size, rebased };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { check: { type: 'boolean', default: false } } });
  const outDir = values.check ? mkdtempSync(path.join(os.tmpdir(), 'berkeley-agent-build-')) : path.join(REPO_ROOT, 'dist');
  try {
    // A stale bundle must not survive a failed build: bin/ would run it.
    if (!values.check) rmSync(outDir, { recursive: true, force: true });
    const built = await buildBundle(outDir, path.join(REPO_ROOT, 'dist'));
    process.stderr.write(`built ${path.relative(REPO_ROOT, built.outFile) || built.outFile} (${(built.bytes / 1024).toFixed(0)} KiB)\n`);
    for (const line of built.rebased) process.stderr.write(`  rebased ${line}\n`);
  } finally {
    if (values.check) rmSync(outDir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    process.stderr.write(`build failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
