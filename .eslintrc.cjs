/* Legacy config on purpose (issue 2): ESLint 8 with typescript-eslint's type-aware rules. */
/**
 * The layering of STYLE.md ("the tree is the architecture"), checked: each folder may import only
 * what sits below it, and `src/errors.ts` from anywhere. Patterns are gitignore-style on the import
 * string: `../*` forbids every sibling of the folder, `!` lets the allowed ones back in. The core rule
 * sees `import type` and `export ... from` too, so type-only arrows are checked as well.
 */
function layer(folder, allowed) {
  const may = allowed.length === 0 ? 'only itself and ../errors.js' : `itself, ${allowed.join(', ')} and ../errors.js`;
  return {
    files: [`src/${folder}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['../*', '!../errors.js', ...allowed.map((f) => `!../${f}`)],
              message: `src/${folder} may import ${may} (the layering in STYLE.md).`,
            },
          ],
        },
      ],
    },
  };
}

/** The same rule for a folder's subfolders (one phase per file, e.g. `replication/backup/`): the parent is `..`. */
function sublayer(folder, allowed) {
  const may = `its parent folder, ${allowed.join(', ')} and ../../errors.js`;
  return {
    files: [`src/${folder}/*/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['../../*', '!../../errors.js', ...allowed.map((f) => `!../../${f}`)],
              message: `src/${folder}/*/ may import ${may} (the layering in STYLE.md).`,
            },
          ],
        },
      ],
    },
  };
}

module.exports = {
  root: true,
  parser: '@typescript-eslint/parser',
  parserOptions: {
    project: './tsconfig.json',
    tsconfigRootDir: __dirname,
    sourceType: 'module',
  },
  plugins: ['@typescript-eslint'],
  extends: [
    'eslint:recommended',
    'plugin:@typescript-eslint/recommended-type-checked',
  ],
  env: { node: true, es2022: true },
  ignorePatterns: ['dist/', 'node_modules/', '*.cjs', '*.mjs'],
  rules: {
    // node:test's test() returns a promise the runner itself awaits.
    '@typescript-eslint/no-floating-promises': [
      'error',
      { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] }] },
    ],
    '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
    '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    '@typescript-eslint/consistent-type-imports': 'error',
    'no-constant-condition': ['error', { checkLoops: false }],
    eqeqeq: ['error', 'smart'],
  },
  overrides: [
    // The framework adapters: each may use the framework-free adapter core and what lies below it,
    // never another framework's folder, so a Koa user never loads Express or Fastify.
    layer('koa', ['adapter', 'replication', 'ring', 'codec', 'cluster']),
    layer('express', ['adapter', 'replication', 'ring', 'codec', 'cluster']),
    layer('fastify', ['adapter', 'replication', 'ring', 'codec', 'cluster']),
    layer('adapter', ['replication', 'ring', 'codec', 'cluster']),
    layer('replication', ['ring', 'codec', 'cluster']),
    layer('ring', []),
    layer('codec', []),
    layer('cluster', []),
    sublayer('replication', ['ring', 'codec', 'cluster']),
    {
      // Every layer imports errors.ts, so it imports nothing: no cycle can pass through it.
      files: ['src/errors.ts'],
      rules: {
        'no-restricted-imports': ['error', { patterns: [{ group: ['*'], message: 'src/errors.ts imports nothing: every layer uses it.' }] }],
      },
    },
    {
      // Tests and tooling handle untyped JSON from HTTP responses and child processes.
      files: ['test/**/*.ts', 'bench/**/*.ts', 'demo/**/*.ts'],
      rules: {
        '@typescript-eslint/no-unsafe-assignment': 'off',
        '@typescript-eslint/no-unsafe-member-access': 'off',
        '@typescript-eslint/no-unsafe-argument': 'off',
        '@typescript-eslint/no-unsafe-call': 'off',
        '@typescript-eslint/no-unsafe-return': 'off',
      },
    },
  ],
};
