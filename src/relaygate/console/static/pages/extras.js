// More pages for every signed-in user (the playground): path -> { page, title }.
export const PAGES = {};
