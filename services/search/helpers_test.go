package search

import (
	"errors"

	"github.com/natter-chat/natter/services/search/wire"
)

func errorsIsBadQuery(err error) bool    { return errors.Is(err, wire.ErrBadQuery) }
func errorsIsUnavailable(err error) bool { return errors.Is(err, wire.ErrUnavailable) }
