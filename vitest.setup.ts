// lavapipe prints a warning per process without a runtime dir.
import { mkdirSync } from 'node:fs';

if (!process.env.XDG_RUNTIME_DIR) {
  const dir = `/tmp/xdg-${process.getuid?.() ?? 0}`;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  process.env.XDG_RUNTIME_DIR = dir;
}
