#!/usr/bin/env bash
# Builds the student web app into build/ (git-ignored): the app's own ES modules from src/,
# and the libraries it uses copied from node_modules, installed at the versions pinned in
# package-lock.json. Nothing is fetched at run time: the gateway serves build/ as it is.
set -euo pipefail
cd "$(dirname "$0")"
command -v npm >/dev/null || { echo "the web app needs Node.js and npm (apt-get install nodejs npm)" >&2; exit 1; }
npm ci --omit=dev --no-audit --no-fund --loglevel=error
rm -rf build
mkdir -p build/vendor/katex/fonts
cp -r src/. build/
cp node_modules/marked/lib/marked.esm.js build/vendor/marked.esm.js
cp node_modules/katex/dist/katex.mjs build/vendor/katex/katex.mjs
cp node_modules/katex/dist/katex.min.css build/vendor/katex/katex.min.css
# Every browser this app supports reads woff2; the css lists the other formats as fallbacks.
cp node_modules/katex/dist/fonts/*.woff2 build/vendor/katex/fonts/
for lib in marked katex; do cp "node_modules/$lib/LICENSE" "build/vendor/LICENSE.$lib"; done
touch build/.built
