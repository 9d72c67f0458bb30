// Vitest runs the React hook tests only (the client's own tests run on
// node's test runner), in happy-dom.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    environment: 'happy-dom',
    include: ['tests/react.spec.mjs'],
  },
});
