import { describe, expect, it } from "vitest";
import { niceMax } from "./chart";

describe("chart", () => {
  it("rounds the y axis up to 1, 2 or 5 times a power of ten", () => {
    expect(niceMax(0)).toBe(1);
    expect(niceMax(0.37)).toBeCloseTo(0.5);
    expect(niceMax(7)).toBe(10);
    expect(niceMax(12)).toBe(20);
    expect(niceMax(200)).toBe(200);
    expect(niceMax(4100)).toBe(5000);
  });
});
