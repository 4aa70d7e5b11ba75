// ESLint flat config. Syntax-only typescript-eslint rules (no type information), so
// `npm run lint` stays fast; `npm run typecheck` is the type check.
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

const CLOCK_MESSAGE = 'Use the injected Clock (src/platform/clock.ts) instead of reading the system time.';

export default defineConfig(
  globalIgnores(['dist/', 'node_modules/', 'data/', 'coverage/', 'bench/.work/']),

  {
    name: 'bulwark/files',
    files: ['**/*.{js,mjs,cjs,ts,mts,cts}'],
  },

  js.configs.recommended,
  tseslint.configs.recommended,

  {
    name: 'bulwark/base',
    languageOptions: {
      ecmaVersion: 'latest',
      sourceType: 'module',
      globals: { ...globals.node },
    },
    linterOptions: {
      reportUnusedDisableDirectives: 'error',
    },
    rules: {
      eqeqeq: 'error',
      // The TypeScript version understands types and also runs on .js/.mjs files; one report is enough.
      'no-unused-vars': 'off',
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          args: 'after-used',
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
          ignoreRestSiblings: true,
        },
      ],
    },
  },

  {
    // Configuration is read in one place: src/config/config.ts builds a frozen Config from
    // process.env and everything else receives it.
    name: 'bulwark/src-no-process-env',
    files: ['src/**'],
    rules: {
      'no-restricted-properties': [
        'error',
        {
          object: 'process',
          property: 'env',
          message: 'Read settings from the Config (src/config/config.ts is the only reader of process.env).',
        },
      ],
    },
  },
  {
    name: 'bulwark/process-env-allowed',
    files: ['src/config/config.ts', '**/*.test.ts'],
    rules: {
      'no-restricted-properties': 'off',
    },
  },

  {
    // The portal's and dashboard's scripts run in the browser (src/web, served as they are).
    name: 'bulwark/web',
    files: ['src/web/**/*.js'],
    languageOptions: { globals: { ...globals.browser } },
  },

  {
    // Business modules take the time from the injected Clock, so tests can control it.
    name: 'bulwark/modules-use-clock',
    files: ['src/modules/**'],
    rules: {
      'no-restricted-syntax': [
        'error',
        { selector: "CallExpression[callee.object.name='Date'][callee.property.name='now']", message: CLOCK_MESSAGE },
        { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: CLOCK_MESSAGE },
        { selector: "CallExpression[callee.name='Date']", message: CLOCK_MESSAGE },
      ],
    },
  },
);
