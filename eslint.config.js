// ESLint: only rules that catch real crashes or keep the architecture true (STYLE.md "Lint and
// format"). Type-aware rules use the TypeScript project service; formatting is Prettier's.
import tseslint from 'typescript-eslint';
import { importX } from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

// Value imports that belong to the edges: the core stays transport-agnostic (type imports are fine).
const EDGE_ONLY = [
  { name: 'ws', message: 'Only src/node/ touches ws (use `import type` elsewhere).' },
  { name: 'node:http', message: 'Only src/node/ touches node:http (use `import type` elsewhere).' },
  {
    name: 'node:https',
    message: 'Only src/node/ touches node:https (use `import type` elsewhere).',
  },
  { name: 'node:net', message: 'Only src/node/ touches node:net (use `import type` elsewhere).' },
];
const BROKERS = [
  { name: 'redis', message: 'wshub never imports a broker client by value: users hand theirs in.' },
];

export default tseslint.config(
  { ignores: ['dist/', 'docs/', 'node_modules/', 'bench/results/', 'test/artifacts/'] },
  {
    linterOptions: { reportUnusedDisableDirectives: 'error' },
  },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.base],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // An async listener that rejects kills Node 20 (STYLE fact 2): every promise is handled.
      '@typescript-eslint/no-floating-promises': [
        'error',
        // node:test's test() returns a promise the runner itself awaits.
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': [
        'error',
        { considerDefaultExhaustiveForUnions: true },
      ],
      '@typescript-eslint/consistent-type-imports': [
        'error',
        { fixStyle: 'inline-type-imports', disallowTypeAnnotations: false },
      ],
      // `import { type A }` alone still loads the module; `import type { A }` does not.
      '@typescript-eslint/no-import-type-side-effects': 'error',
      // Throwing or rejecting with a non-Error loses the stack; passing on a caught value is fine.
      '@typescript-eslint/only-throw-error': 'error',
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      '@typescript-eslint/no-this-alias': 'error',
    },
  },
  {
    files: ['src/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      // no-cycle reads the imported files too: it must parse .ts and resolve '.js' to '.ts'.
      'import-x/extensions': ['.ts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: 'tsconfig.json' })],
    },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      // No value-import cycles (type-only imports are erased and may point either way).
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [...EDGE_ONLY, ...BROKERS].map((p) => ({ ...p, allowTypeImports: true })),
          patterns: [
            {
              group: ['**/node/*', '**/cluster/*'],
              allowTypeImports: true,
              message: 'The core does not depend on its edges; wire them in src/index.ts.',
            },
          ],
        },
      ],
    },
  },
  {
    // The edges may import what they are the edge of.
    files: ['src/node/**/*.ts', 'src/index.ts', 'src/redis.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        { paths: BROKERS.map((p) => ({ ...p, allowTypeImports: true })) },
      ],
    },
  },
  {
    files: ['src/cluster/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [...EDGE_ONLY, ...BROKERS].map((p) => ({ ...p, allowTypeImports: true })),
          patterns: [
            {
              group: ['**/node/*'],
              allowTypeImports: true,
              message: 'The cluster layer does not depend on the ws edge.',
            },
          ],
        },
      ],
    },
  },
);
