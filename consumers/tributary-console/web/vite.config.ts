import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// Served by `tributary up` under /console, from the files embedded in the
// binary (consumers/tributary-console/build.rs reads dist/).
export default defineConfig({
  base: "/console/",
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, assetsInlineLimit: 0 },
  server: { proxy: { "/v1": "http://127.0.0.1:8080", "/metrics": "http://127.0.0.1:8080" } },
});
