"""Static files in production: hashed names and compressed copies (WhiteNoise), with the
portal's ES modules' relative imports rewritten to the hashed names too.

The portal's scripts are ES modules importing one another by relative path
(``import { realtime } from "./realtime.js";``). Without the rewrite, a hashed entry module would
import the unhashed files: served, but not cache-busted, so a deploy could mix old and new
modules. Django rewrites static ``import``/``export … from`` statements when asked to
(``support_js_module_import_aggregation``)."""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    support_js_module_import_aggregation = True
