// Bundles the example with esbuild into example/dist/ (or the folder given as the first
// argument): app.js, index.html and the wasm module, ready to serve as static files, for
// instance by `eventsync-server --static-dir`. `--production` builds React's production mode
// (the default is development, where StrictMode double-mounts).
import { copyFile, mkdir } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));

/** Builds the example into `outdir`; returns esbuild's result. */
export async function buildExample(outdir = join(here, "dist"), { production = false } = {}) {
  await mkdir(outdir, { recursive: true });
  const result = await build({
    entryPoints: [join(here, "src/main.tsx")],
    outfile: join(outdir, "app.js"),
    bundle: true,
    format: "esm",
    target: "es2022",
    platform: "browser",
    jsx: "automatic",
    sourcemap: true,
    minify: production,
    define: { "process.env.NODE_ENV": JSON.stringify(production ? "production" : "development") },
    logLevel: "warning",
  });
  const web = dirname(createRequire(import.meta.url).resolve("eventsync/web"));
  await copyFile(join(web, "eventsync_bg.wasm"), join(outdir, "eventsync_bg.wasm"));
  await copyFile(join(here, "index.html"), join(outdir, "index.html"));
  return result;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const outdir = args.find((arg) => !arg.startsWith("--"));
  await buildExample(outdir && resolve(outdir), { production: args.includes("--production") });
}
