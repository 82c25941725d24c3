// Background tasks (exports, imports): follow one to its end.

import { api } from "./api.js";
import { t } from "./i18n.js";

/** Polls the task until it ends; `onProgress(task)` hears each step. Returns the task, or throws on failure. */
export async function follow(taskId, onProgress = () => {}) {
  for (;;) {
    const task = await api("GET", `/api/tasks/${taskId}`);
    if (task.state === "SUCCESS") return task;
    if (task.state === "FAILURE") throw new Error(t("task.failed", { reason: task.error ?? "" }));
    onProgress(task);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}
