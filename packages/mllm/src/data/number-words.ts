/**
 * Integers as English words, the form every numeric answer takes ("three", "twenty one"), so a
 * word-level tokenizer needs no digits. Compound numbers are two words separated by a space.
 *
 * Non-goals: numbers ≥ 100, hyphenation ("twenty-one"), ordinals.
 */

const ONES = [
  'zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine',
  'ten', 'eleven', 'twelve', 'thirteen', 'fourteen', 'fifteen', 'sixteen', 'seventeen', 'eighteen', 'nineteen',
] as const;
const TENS = ['', '', 'twenty', 'thirty', 'forty', 'fifty', 'sixty', 'seventy', 'eighty', 'ninety'] as const;

/** 0..99 → words: 7 → "seven", 40 → "forty", 42 → "forty two". */
export function numberWord(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 99) throw new Error(`numberWord: n must be an integer in 0..99, got ${n}`);
  if (n < 20) return ONES[n]!;
  const tens = TENS[Math.floor(n / 10)]!;
  return n % 10 === 0 ? tens : `${tens} ${ONES[n % 10]!}`;
}
