/**
 * Seeds for parameter initialization: each module draws the next value of a stream derived from
 * the model seed, so a config plus a seed fixes every initial weight on every device.
 */
export function seedStream(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    // splitmix32: well-spread, distinct successive seeds
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}
