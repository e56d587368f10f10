// More pages for every signed-in user (the playground): path -> { page, title }.
import * as playground from "./playground.js";

export const PAGES = {
  "/playground": { page: playground, title: "nav.playground" },
};
