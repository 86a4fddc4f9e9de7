/**
 * SVG → PNG for the report charts, in Node only (the browser shows the inline SVG instead).
 *
 * The rasterizer is resvg (through @resvg/resvg-js, prebuilt per platform, no network at install):
 * it implements the SVG 1.1 static subset our charts use, with no browser and no headless engine.
 * An image of W×H SVG px rendered at `scale` s is round(s·W) × round(s·H) pixels; the charts use
 * whole-pixel sizes, so an integer s gives exactly s·W × s·H.
 *
 * Fonts: resvg draws no glyph it cannot find, and a chart without text is useless, so system font
 * discovery is off and the font is given explicitly: the first of FONT_CANDIDATES that exists
 * (DejaVu Sans on Debian/Ubuntu/Fedora/Arch, Arial on macOS and Windows), or the caller's
 * `fontFiles`. When none exists the call fails with an error saying where it looked and what to
 * install, never with a silently blank PNG.
 *
 * Non-goals: embedded raster images, SVG fonts, animation, output formats other than PNG.
 */
import { existsSync } from 'node:fs';
import { Resvg } from '@resvg/resvg-js';

/** Where the default font is looked for, in order (the first that exists is loaded). */
export const FONT_CANDIDATES: readonly string[] = [
  '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf', // Debian, Ubuntu (fonts-dejavu-core)
  '/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf', // Fedora
  '/usr/share/fonts/dejavu/DejaVuSans.ttf',
  '/usr/share/fonts/TTF/DejaVuSans.ttf', // Arch
  '/usr/local/share/fonts/DejaVuSans.ttf',
  '/System/Library/Fonts/Supplemental/Arial.ttf', // macOS
  '/Library/Fonts/Arial.ttf',
  'C:\\Windows\\Fonts\\arial.ttf',
];

export interface RasterOptions {
  /** Device pixels per SVG px (default 2, sharp on high-density screens and in print). */
  scale?: number;
  /** Font files to load instead of the first found FONT_CANDIDATES entry. */
  fontFiles?: readonly string[];
}

export interface RasterImage {
  /** The encoded PNG file. */
  png: Uint8Array;
  width: number;
  height: number;
  /** Straight RGBA, row-major, width·height·4 bytes. */
  rgba: Uint8Array;
}

/** The font files a rasterization loads: the caller's (each must exist), else the first candidate found. */
export function resolveFontFiles(fontFiles?: readonly string[], candidates: readonly string[] = FONT_CANDIDATES): string[] {
  if (fontFiles !== undefined) {
    if (!Array.isArray(fontFiles) || fontFiles.length === 0) throw new Error('svgToPng: fontFiles must list at least one font file');
    fontFiles.forEach((f, i) => {
      if (typeof f !== 'string' || !existsSync(f)) throw new Error(`svgToPng: fontFiles[${i}] (${String(f)}) does not exist`);
    });
    return [...fontFiles];
  }
  const found = candidates.find((f) => existsSync(f));
  if (found === undefined) {
    throw new Error(
      `svgToPng: no font found for the chart text (looked for ${candidates.join(', ')}); ` +
        'install DejaVu Sans (Debian/Ubuntu: apt-get install fonts-dejavu-core) or pass fontFiles',
    );
  }
  return [found];
}

/** Renders `svg` to pixels and a PNG (file comment). */
export function rasterizeSvg(svg: string, options: RasterOptions = {}): RasterImage {
  if (typeof svg !== 'string' || !svg.trimStart().startsWith('<svg')) throw new Error('svgToPng: svg must be an SVG document string starting with <svg');
  const scale = options.scale ?? 2;
  if (!(Number.isFinite(scale) && scale > 0 && scale <= 16)) throw new Error(`svgToPng: scale must be in (0, 16], got ${scale}`);
  const fontFiles = resolveFontFiles(options.fontFiles);
  let rendered;
  try {
    const resvg = new Resvg(svg, {
      fitTo: { mode: 'zoom', value: scale },
      font: { loadSystemFonts: false, fontFiles, defaultFontFamily: 'DejaVu Sans', sansSerifFamily: 'DejaVu Sans' },
      logLevel: 'off',
    });
    rendered = resvg.render();
  } catch (e) {
    throw new Error(`svgToPng: resvg could not render the svg: ${e instanceof Error ? e.message : String(e)}`);
  }
  return { png: new Uint8Array(rendered.asPng()), width: rendered.width, height: rendered.height, rgba: new Uint8Array(rendered.pixels) };
}

/** The PNG file of `svg` (see rasterizeSvg). */
export function svgToPng(svg: string, options: RasterOptions = {}): Uint8Array {
  return rasterizeSvg(svg, options).png;
}
