#!/usr/bin/env bash
# Builds the web app for release with Trunk (Trunk.toml, web/index.html): the `web-release`
# cargo profile (opt-level z, fat LTO, one codegen unit, panic=abort) and wasm-opt -Oz from
# npm's binaryen (e2e/node_modules, put first on PATH: Debian's wasm-opt breaks the app);
# Trunk minifies the HTML and CSS (--minify), terser the wasm-bindgen JS glue, whose
# integrity hash in index.html is then renewed. Trunk's inline loader script moves into a
# file of its own (boot-HASH.js, with an integrity hash), so a page can be served with a
# Content-Security-Policy that allows no inline script (the template's page hosting). A
# default config.json, {"mode":"in-page","written_by":"build-web.sh"}, goes next to
# index.html: on a static host the page's probe for it finds it (no 404 in the console) and
# runs in-page; `fleet local` answers /config.json itself instead of that file, and
# `fleet aws publish-page` uploads the stack's. Never downloads anything. Then prints the
# transfer size (scripts/web-size.sh), which fails over the budget. Run scripts/setup.sh
# (rust, web) first.
# Last, writes NAME.br and NAME.gz beside each asset, which `fleet local` serves (below).
#
# Usage: scripts/build-web.sh [--public-url URL] [--dist DIR] [other `trunk build` options]
#        (default dist: dist/, from Trunk.toml; default public URL `./`: relative asset URLs,
#        so one build works at the root (`fleet local`) and under any sub-path (a static
#        host); `--public-url /fleet/` gives absolute ones for that sub-path, as the GitHub
#        Pages workflow builds it)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

wasm_opt_bin=$PWD/e2e/node_modules/.bin
[ -x "$wasm_opt_bin/wasm-opt" ] && [ -x "$wasm_opt_bin/terser" ] || {
  echo "build-web: no wasm-opt or terser in $wasm_opt_bin; run scripts/setup.sh web" >&2
  exit 1
}
export PATH="$wasm_opt_bin:$PATH"

dist=dist
public_url=(--public-url ./)
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --dist | -d) dist=${args[i + 1]:-dist} ;;
    --dist=*) dist=${args[i]#--dist=} ;;
    --public-url | --public-url=*) public_url=() ;;
  esac
done

# Trunk passes --offline to cargo, so the dependencies must be in cargo's cache.
cargo fetch --locked -q
# Quiet on success; on failure the end of the log, and where the whole of it is.
log=$(cargo metadata --format-version 1 --no-deps | sed 's/.*"target_directory":"\([^"]*\)".*/\1/')/build-web.log
mkdir -p "$(dirname "$log")"
if ! TRUNK_OFFLINE=true TRUNK_SKIP_VERSION_CHECK=true TRUNK_BUILD_LOCKED=true NO_COLOR=true \
  trunk build --release --minify "${public_url[@]}" "$@" >"$log" 2>&1; then
  grep -v '^ *[0-9]*: \|^ *at ' "$log" | tail -n 60 >&2
  echo "build-web: trunk build --release failed; the whole log: $log" >&2
  exit 1
fi

# The glue is ~50 KB of readable JS (9 KB gzip); minified it is 2 KB smaller gzipped. Trunk
# put a sha384 integrity hash of it in index.html (the modulepreload link, whose href is
# ./NAME or, with --public-url, that URL's path and NAME): renew it.
for js in "$dist"/*.js; do
  "$wasm_opt_bin/terser" "$js" --module --compress --mangle --output "$js.min"
  mv "$js.min" "$js"
  node --input-type=module - "$js" "$dist/index.html" <<'NODE'
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
const [js, html] = process.argv.slice(2);
const sri = 'sha384-' + createHash('sha384').update(readFileSync(js)).digest('base64');
const page = readFileSync(html, 'utf8');
const name = basename(js).replace(/[.]/g, '\\.');
const link = new RegExp(`(href="?[^"\\s>]*/${name}"?[^>]*integrity="?)sha384-[A-Za-z0-9+/=]+`);
if (!link.test(page)) throw new Error(`build-web: no integrity hash for ${basename(js)} in ${html}`);
writeFileSync(html, page.replace(link, `$1${sri}`));
NODE
done

# Trunk's loader (import the glue, init the wasm, fire TrunkApplicationStarted) is an inline
# module script: into boot-HASH.js next to the glue, loaded from the same base URL.
node --input-type=module - "$dist" <<'NODE'
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
const dist = process.argv[2];
const html = join(dist, 'index.html');
const page = readFileSync(html, 'utf8');
const inline = [...page.matchAll(/<script type="?module"?>([\s\S]*?)<\/script>/g)];
if (inline.length !== 1) throw new Error(`build-web: ${inline.length} inline module scripts in ${html}, expected Trunk's loader alone`);
const [tag, code] = inline[0];
const base = code.match(/from\s*'([^']*\/)[^'/]*\.js'/)?.[1];
if (base === undefined) throw new Error(`build-web: no import of the glue in Trunk's loader: ${code}`);
const name = `boot-${createHash('sha256').update(code).digest('hex').slice(0, 16)}.js`;
writeFileSync(join(dist, name), code);
const sri = 'sha384-' + createHash('sha384').update(code).digest('base64');
writeFileSync(html, page.replace(tag, `<script type=module src="${base}${name}" integrity="${sri}"></script>`));
NODE
if grep -q '<script[^>]*>[^<]' "$dist/index.html"; then
  echo "build-web: an inline script is left in $dist/index.html" >&2
  exit 1
fi

printf '%s\n' '{"mode":"in-page","written_by":"build-web.sh"}' >"$dist/config.json"
scripts/web-size.sh "$dist"

# ---- Precompression (for `fleet local`, local/src/web_app.rs) -------------------------------
# Beside each text or wasm file in dist/, NAME.br (brotli, quality 11, Node's zlib) and NAME.gz
# (zopfli, Debian's, installed by scripts/setup.sh web: 4% smaller than gzip -9 on the wasm,
# which keeps gzip-only visits within the budget; gzip -9 -n when it is missing), kept only
# when smaller than NAME. `fleet local` serves one by the request's Accept-Encoding (content-encoding,
# Vary: Accept-Encoding), so a visit costs the compressed bytes without compressing per
# request. Chromium asks for brotli from loopback and HTTPS origins, for gzip only from other
# plain-HTTP ones (a stack started with --allow-remote). Static hosts (GitHub Pages,
# CloudFront) compress by themselves and ignore these files.
gzip_tool=zopfli
have zopfli || {
  gzip_tool=gzip
  echo "build-web: no zopfli (scripts/setup.sh web installs it): .gz files by gzip -9, ~4% larger" >&2
}
node --input-type=module - "$dist" "$gzip_tool" <<'NODE'
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, constants as z } from 'node:zlib';
const [dist, gzipTool] = process.argv.slice(2);
const gzipArgs = gzipTool === 'zopfli' ? ['-c'] : ['-9', '-n', '-c'];
const text = /\.(html|js|mjs|css|svg|json|txt|map)$/;
const files = (dir) => readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
  e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]);
let count = 0, raw = 0, br = 0, gz = 0;
for (const f of files(dist)) {
  if (/\.(br|gz)$/.test(f)) rmSync(f); // an older build's
}
for (const f of files(dist)) {
  if (!text.test(f) && !f.endsWith('.wasm')) continue;
  const bytes = readFileSync(f);
  const variants = {
    br: brotliCompressSync(bytes, { params: {
      [z.BROTLI_PARAM_QUALITY]: z.BROTLI_MAX_QUALITY,
      [z.BROTLI_PARAM_LGWIN]: z.BROTLI_MAX_WINDOW_BITS,
      [z.BROTLI_PARAM_MODE]: text.test(f) ? z.BROTLI_MODE_TEXT : z.BROTLI_MODE_GENERIC,
      [z.BROTLI_PARAM_SIZE_HINT]: bytes.length,
    } }),
    gz: execFileSync(gzipTool, [...gzipArgs, f], { maxBuffer: 1 << 30 }),
  };
  let kept = false;
  for (const [ext, packed] of Object.entries(variants)) {
    if (packed.length < bytes.length) {
      writeFileSync(`${f}.${ext}`, packed);
      kept = true;
    }
  }
  if (!kept) continue;
  count += 1;
  raw += bytes.length;
  br += Math.min(variants.br.length, bytes.length);
  gz += Math.min(variants.gz.length, bytes.length);
}
const kb = (b) => `${(b / 1000).toFixed(1)} KB`;
console.log(`precompressed ${count} files of ${kb(raw)}: ${kb(br)} brotli, ${kb(gz)} gzip by ${gzipTool} (served by fleet local)`);
NODE
