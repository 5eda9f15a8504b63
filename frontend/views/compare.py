from frontend import pages

pages.compare_page(pages.Context.current())
