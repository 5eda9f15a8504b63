from frontend import pages

pages.score_page(pages.Context.current())
