from frontend import pages

pages.history_page(pages.Context.current())
