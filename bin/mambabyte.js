#!/usr/bin/env node
// Thin launcher: the CLI is TypeScript compiled to dist/ by `npm install` (the prepare script).
import { run } from '../dist/src/main.js';
run();
