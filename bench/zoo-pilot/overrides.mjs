// A pilot's JSON overrides merged into a recipe: objects key by key, anything else (arrays included)
// replaces the recipe's value.
export function mergeOverrides(recipe, overrides) {
  if (overrides === null || typeof overrides !== 'object' || Array.isArray(overrides)) return overrides;
  const out = { ...recipe };
  for (const [k, v] of Object.entries(overrides)) out[k] = mergeOverrides(recipe?.[k], v);
  return out;
}
